#!/usr/bin/env python3
"""Start-up of inits run in turns: `INIT -- /bin/true`, 600 times each, the order reversed
every other turn; prints each init's median and its difference to the first's.

    python3 bench/turns.py /usr/bin/tini bin/tender old-tender

For comparing two builds of tender on a VM whose speed drifts (make bench does the same for
tender and its peers)."""
import os, statistics, sys, time

inits = sys.argv[1:]
env = {k: v for k, v in os.environ.items() if not k.startswith("TENDER_")}
env.update(TENDER_CONTROL="off", TENDER_LOG_LEVEL="error")
devnull = os.open("/dev/null", os.O_WRONLY)
times = {i: [] for i in inits}
for turn in range(600):
    for init in inits if turn % 2 == 0 else inits[::-1]:
        start = time.perf_counter()
        pid = os.posix_spawn(init, [init, "--", "/bin/true"], env, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 2)])
        os.waitpid(pid, 0)
        times[init].append(time.perf_counter() - start)
base = statistics.median(times[inits[0]])
for init in inits:
    median = statistics.median(times[init])
    print(f"{init}: {median * 1000:.2f} ms ({(median - base) * 1000:+.2f})")
