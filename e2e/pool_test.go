package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenderinit/tender/apps"
)

// Pool is tender running a pool, with a control socket of its own.
type Pool struct {
	*Run
	Control string
	Dir     string
}

func startPool(t *testing.T, env []string, args ...string) *Pool {
	t.Helper()
	dir := t.TempDir()
	ctl := filepath.Join(dir, "control.sock")
	env = append([]string{"TENDER_CONTROL=" + ctl}, env...)
	return &Pool{Run: startTender(t, AsPID1, env, args...), Control: ctl, Dir: dir}
}

// tenderCLI runs the tender binary as a client of the pool's control socket.
func (p *Pool) tenderCLI(args ...string) (string, error) {
	cmd := exec.Command(bin.tender, args...)
	cmd.Env = append(cleanEnv(), "TENDER_CONTROL="+p.Control)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Status asks `tender status --json`.
func (p *Pool) Status() (apps.Status, error) {
	out, err := p.tenderCLI("status", "--json")
	if err != nil {
		return apps.Status{}, fmt.Errorf("%v: %s", err, out)
	}
	var st apps.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("status --json does not parse: %v\n%s", err, out)
	}
	return st, nil
}

// waitFor polls the status until cond holds and returns that status.
func (p *Pool) waitFor(what string, timeout time.Duration, cond func(apps.Status) bool) apps.Status {
	p.t.Helper()
	var st apps.Status
	eventually(p.t, timeout, what, func() bool {
		var err error
		st, err = p.Status()
		return err == nil && cond(st)
	})
	return st
}

func ready(st apps.Status) []apps.WorkerStatus {
	var out []apps.WorkerStatus
	for _, w := range st.Workers {
		if w.State == "ready" {
			out = append(out, w)
		}
	}
	return out
}

// allNew reports whether no worker of now is one of before's.
func allNew(before, now apps.Status) bool {
	for _, w := range now.Workers {
		for _, o := range before.Workers {
			if w.Pid == o.Pid {
				return false
			}
		}
	}
	return true
}

func nReady(n int) func(apps.Status) bool {
	return func(st apps.Status) bool { return len(ready(st)) == n && len(st.Workers) == n }
}

// records reads the lines `testapp serve -record` appends at each start: time, pid, id, port.
type record struct {
	at      time.Time
	pid, id int
	port    string
}

func readRecords(t *testing.T, path string) []record {
	t.Helper()
	b, _ := os.ReadFile(path)
	var out []record
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			continue
		}
		us, _ := strconv.ParseInt(f[0], 10, 64)
		pid, _ := strconv.Atoi(f[1])
		id, _ := strconv.Atoi(f[2])
		out = append(out, record{time.UnixMicro(us), pid, id, f[3]})
	}
	return out
}

func TestPoolStartsWorkersAndReplacesAKilledOne(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rec := filepath.Join(dir, "starts")
	p := startPool(t, []string{"TENDER_WORKERS=4"}, "--", bin.testapp, "serve", "-record", rec)
	st := p.waitFor("4 ready workers", 10*time.Second, nReady(4))

	starts := readRecords(t, rec)
	ids, ports := map[int]bool{}, map[string]bool{}
	for _, r := range starts {
		ids[r.id], ports[r.port] = true, true
	}
	if len(starts) != 4 || len(ids) != 4 || len(ports) != 4 || !ids[0] || !ids[3] {
		t.Fatalf("starts %v: want 4 workers with TENDER_WORKER_ID 0-3 and 4 distinct ports", starts)
	}
	// Each worker answers on its PORT with its id.
	for _, r := range starts {
		body := httpGet(t, "http://127.0.0.1:"+r.port+"/")
		if !strings.HasPrefix(body, fmt.Sprintf("%d %d", r.id, r.pid)) {
			t.Errorf("worker %d answers %q on its port", r.id, body)
		}
	}

	victim := st.Workers[1]
	before := map[int]int{} // id -> pid, in tender's namespace
	for _, w := range st.Workers {
		before[w.ID] = w.Pid
	}
	killInNamespace(t, p.Run, victim.Pid, syscall.SIGKILL)
	st = p.waitFor("worker 1 replaced", 10*time.Second, func(st apps.Status) bool {
		if !nReady(4)(st) {
			return false
		}
		for _, w := range st.Workers {
			if w.ID == victim.ID && w.Pid != victim.Pid && w.Restarts == 1 {
				return true
			}
		}
		return false
	})
	for _, w := range st.Workers {
		if w.ID != victim.ID && (w.Pid != before[w.ID] || w.Restarts != 0) {
			t.Errorf("worker %d was touched: pid %d -> %d, restarts %d", w.ID, before[w.ID], w.Pid, w.Restarts)
		}
	}
	if !p.logged("worker exited") {
		t.Errorf("tender did not log the crash:\n%s", p.Stderr)
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// An idle pool, balancer included, does not wake: no timer ticks while no worker drains and
// nothing is to be recycled (a 20 ms tick used to wake tender 50 times a second, for ever).
func TestIdlePoolSleeps(t *testing.T) {
	t.Parallel()
	p := startPool(t, []string{"TENDER_WORKERS=2", "TENDER_LISTEN=127.0.0.1:" + freePort(t)}, "--", bin.testapp, "serve")
	p.waitFor("2 ready workers", 10*time.Second, nReady(2))
	pid := p.TenderPid()
	time.Sleep(300 * time.Millisecond) // the Go runtime's monitor winds down
	before := contextSwitches(t, pid)
	time.Sleep(time.Second)
	woke := contextSwitches(t, pid) - before
	if woke > 10 {
		t.Errorf("idle tender was switched to %d times in a second, want almost never", woke)
	}
	t.Logf("idle tender was switched to %d times in a second", woke)
}

// contextSwitches is the number of times the threads of pid gave up or lost the CPU.
func contextSwitches(t *testing.T, pid int) int {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if err != nil {
			continue // the thread ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				c, _ := strconv.Atoi(strings.TrimSpace(v))
				n += c
			}
		}
	}
	return n
}

// killInNamespace sends sig to the process that tender's namespace calls pid.
func killInNamespace(t *testing.T, r *Run, nsPid int, sig syscall.Signal) {
	t.Helper()
	host := hostPidOf(t, r.TenderPid(), nsPid)
	if err := syscall.Kill(host, sig); err != nil {
		t.Fatalf("kill %d: %v", host, err)
	}
}

// hostPidOf maps a pid of tender's namespace (as status shows it) to the host's pid.
func hostPidOf(t *testing.T, tender, nsPid int) int {
	t.Helper()
	pid, ok := hostPid(tender, nsPid)
	if !ok {
		t.Fatalf("no process below tender has pid %d in its namespace", nsPid)
	}
	return pid
}

// hostPid is hostPidOf for a process that may be gone: false when none has nsPid, from the
// NSpid lines of /proc/<pid>/status (a process that ends meanwhile is passed over).
func hostPid(tender, nsPid int) (int, bool) {
	for _, p := range append(descendants(tender), Proc{Pid: tender}) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if nspids, ok := strings.CutPrefix(line, "NSpid:"); ok {
				if f := strings.Fields(nspids); len(f) > 0 && f[len(f)-1] == strconv.Itoa(nsPid) {
					return p.Pid, true
				}
			}
		}
	}
	return 0, false
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// Workers that exit at once, forever: the restarts come further and further apart, and once
// every slot has spent its budget (none can serve) tender stops with a non-zero status, leaving
// a spawn report.
func TestPoolCrashLoopBacksOffAndGivesUp(t *testing.T) {
	t.Parallel()
	rec := filepath.Join(t.TempDir(), "starts")
	env := []string{"TENDER_WORKERS=2", "TENDER_RESTART_DELAY=40ms", "TENDER_RESTART_DELAY_MAX=1s", "TENDER_MAX_RESTARTS=5"}
	p := startPool(t, env, "--", bin.testapp, "serve", "-record", rec, "-exit-after", "1ms", "-delay", "1s", "-say", "about to fail")
	code := p.Wait(30 * time.Second)
	if code == 0 {
		t.Fatalf("tender exited 0 after the workers crashed in a loop")
	}
	// Both slots reach the budget together: the first waits in its crash loop (a second at
	// least) and the second, as it reaches the budget, stops the pool.
	starts := map[int][]time.Time{}
	for _, r := range readRecords(t, rec) {
		starts[r.id] = append(starts[r.id], r.at)
	}
	worker0 := starts[0]
	if len(starts[1]) > len(worker0) {
		worker0 = starts[1]
	}
	if len(worker0) != 6 {
		t.Fatalf("the worker that gave up started %d times, want 6 (the first and 5 restarts)", len(worker0))
	}
	sort.Slice(worker0, func(i, j int) bool { return worker0[i].Before(worker0[j]) })
	var gaps []time.Duration
	for i := 1; i < len(worker0); i++ {
		gaps = append(gaps, worker0[i].Sub(worker0[i-1]))
	}
	// Each gap is the backoff delay, 40ms doubling, plus the time the worker takes to start and
	// fail and its leftovers to be looked for (a /proc scan, slower on a loaded machine): at
	// least the delay, and below the next but one.
	for i, gap := range gaps {
		delay := 40 * time.Millisecond << i
		if gap < delay || gap > 4*delay+400*time.Millisecond {
			t.Errorf("restart gap %d is %v, want the backoff %v plus a start: gaps %v", i+1, gap, delay, gaps)
		}
	}
	stderr := p.Stderr.String()
	for _, want := range []string{"worker failed to start", "about to fail", "every worker is in a crash loop: none can serve; stopping"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the log does not say %q:\n%s", want, stderr)
		}
	}
}

// One worker that keeps crashing does not end a pool whose other workers serve: past
// TENDER_MAX_RESTARTS its slot is in a crash loop and retries, a second or more apart, while
// the others take every request; status, /healthz and the log (once) say so, and SIGTERM still
// ends tender with 0. With four workers, one of them OOM-killed again and again, tender used to
// exit 1 after 65 s.
func TestPoolOneWorkerInACrashLoopKeepsThePoolServing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rec, failing := filepath.Join(dir, "starts"), filepath.Join(dir, "failing")
	must(t, os.WriteFile(failing, nil, 0o644))
	front, admin := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	env := []string{"TENDER_WORKERS=3", "TENDER_LISTEN=" + front, "TENDER_ADMIN=" + admin, "TENDER_MIN_UPTIME=1s",
		"TENDER_MAX_RESTARTS=2", "TENDER_RESTART_DELAY=10ms", "TENDER_RESTART_DELAY_MAX=50ms"}
	// While the file is there, worker 1 gets ready, serves, and exits 300 ms into every life.
	script := `if [ "$TENDER_WORKER_ID" = 1 ] && [ -e "$2" ]; then exec "$0" serve -record "$1" -exit-after 300ms; fi
exec "$0" serve -record "$1"`
	p := startPool(t, env, "--", "/bin/sh", "-c", script, bin.testapp, rec, failing)
	eventually(t, 20*time.Second, "worker 1 in a crash loop", func() bool {
		if p.Exited() {
			t.Fatalf("tender exited (status %d) while two workers served", p.Wait(time.Second))
		}
		return strings.Contains(p.Stderr.String(), "worker is in a crash loop")
	})
	startsOf1 := func() []time.Time {
		var at []time.Time
		for _, r := range readRecords(t, rec) {
			if r.id == 1 {
				at = append(at, r.at)
			}
		}
		return at
	}
	// The first start, 2 restarts within the budget, then retries of the crash loop.
	eventually(t, 20*time.Second, "two retries in the crash loop", func() bool { return len(startsOf1()) >= 5 })
	if p.Exited() {
		t.Fatalf("tender exited (status %d) while two workers served", p.Wait(time.Second))
	}
	starts := startsOf1()
	for i := 3; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < time.Second {
			t.Errorf("retry %d in the crash loop came %v after the one before, want a second or more", i-2, gap)
		}
	}
	st, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range st.Workers {
		switch {
		case w.ID == 1 && !w.CrashLoop:
			t.Errorf("status does not show worker 1 in its crash loop: %+v", w)
		case w.ID != 1 && (w.State != "ready" || w.Restarts != 0 || w.CrashLoop):
			t.Errorf("worker %d was touched: %+v", w.ID, w)
		}
	}
	if out, _ := p.tenderCLI("status"); !strings.Contains(out, "in a crash loop, retrying while the others serve: worker 1") {
		t.Errorf("tender status does not say so:\n%s", out)
	}
	code, body := adminGet(t, admin, "/healthz")
	if code != 200 || !strings.Contains(body, "in a crash loop: worker 1") {
		t.Errorf("/healthz: %d %q, want 200 naming worker 1's crash loop", code, body)
	}
	for i := 0; i < 20; i++ {
		if body := httpGet(t, "http://"+front+"/"); body == "" {
			t.Fatalf("request %d got no answer", i)
		}
	}
	if n := strings.Count(p.Stderr.String(), "crash loop"); n != 1 {
		t.Errorf("the log says %d times that worker 1 is in a crash loop, want once:\n%s", n, p.Stderr)
	}

	// Mended, worker 1 is out of its crash loop once it has lived TENDER_MIN_UPTIME.
	must(t, os.Remove(failing))
	eventually(t, 20*time.Second, "worker 1 out of its crash loop", func() bool {
		return strings.Contains(p.Stderr.String(), "worker is out of its crash loop: id=1")
	})
	st = p.waitFor("3 ready, none in a crash loop", 5*time.Second, nReady(3))
	if ids := st.CrashLoops(); len(ids) > 0 {
		t.Errorf("status still shows a crash loop: %+v", st.Workers)
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// adminGet gets path from the admin endpoint, and returns the status and the body.
func adminGet(t *testing.T, admin, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + admin + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A crashed worker's children are ended before its slot starts a new worker, each found its
// own way: one that left the process group (setsid) and the environment before the worker was
// ready (found in /proc then), two forked after, one that left the group but kept the
// environment (found by the worker's NOTIFY_SOCKET in it), one that stayed in the group without
// it (found by its group); and one that ignores SIGTERM (SIGKILL after TENDER_KILL_GRACE). Each new worker of slot 0
// notes, from /proc, the state of the children of the one before it. They used to live on until
// tender's own exit.
func TestPoolEndsACrashedWorkersChildrenBeforeTheRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := `[ "$TENDER_WORKER_ID" = 0 ] || exec "$0" serve
n=$(( $(cat "$1/n" 2>/dev/null || echo 0) + 1 )); echo $n > "$1/n"
for pid in $(cat "$1/children" 2>/dev/null); do
	echo "$n $pid $(sed 's/.*) //' /proc/$pid/stat 2>/dev/null | cut -d' ' -f1)" >> "$1/seen"
done
sleep 1000 & c1=$!
env -i setsid sleep 1001 & c2=$!
setsid sh -c 'trap "" TERM; exec sleep 1002' & c3=$!
echo $c1 $c2 $c3 > "$1/children"
(sleep 0.3; setsid sleep 1003 & echo $! >> "$1/children"; env -i sleep 1004 & echo $! >> "$1/children") &
exec "$0" serve -exit-after 700ms`
	env := []string{"TENDER_WORKERS=2", "TENDER_MAX_RESTARTS=0", "TENDER_RESTART_DELAY=10ms", "TENDER_KILL_GRACE=300ms"}
	p := startPool(t, env, "--", "/bin/sh", "-c", script, bin.testapp, dir)
	// The third worker has seen what the first and the second left: 5 children each.
	eventually(t, 20*time.Second, "a third start of worker 0", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "seen"))
		return strings.Count(string(b), "\n") >= 10
	})
	b, _ := os.ReadFile(filepath.Join(dir, "seen"))
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[:10] {
		// n pid state: the state is empty once the process is gone, Z while it waits for
		// tender's reaper.
		if f := strings.Fields(line); len(f) > 2 && f[2] != "Z" {
			t.Errorf("start %s: child %s of the worker before is still there, state %s", f[0], f[1], f[2])
		}
	}
	if !strings.Contains(p.Stderr.String(), "ending what a worker left behind: id=0") ||
		!strings.Contains(p.Stderr.String(), "did not end on SIGTERM; sending SIGKILL") {
		t.Errorf("the log does not say what it ended:\n%s", p.Stderr)
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// Worker ports lie outside the kernel's ephemeral range, which outgoing connections and binds
// to port 0 take ports from: a port bound to 0, closed and handed on (as it was) could be taken
// again before the worker bound it, once in about a hundred pool starts.
func TestPoolPortsAreOutsideTheEphemeralRange(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	must(t, err)
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil {
		t.Fatalf("ip_local_port_range %q: %v", b, err)
	}
	p := startPool(t, []string{"TENDER_WORKERS=4"}, "--", bin.testapp, "serve")
	st := p.waitFor("4 ready", 10*time.Second, nReady(4))
	for _, w := range st.Workers {
		if port, _ := strconv.Atoi(portOf(t, p, w)); port < 1024 || port >= lo && port <= hi {
			t.Errorf("worker %d has port %d, want one from 1024 up outside the ephemeral range %d-%d", w.ID, port, lo, hi)
		}
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// Where the ephemeral range leaves no port outside it (a tuning common in Kubernetes), the
// workers get ports from the kernel as before, and tender says so once.
func TestPoolPortsWhenTheEphemeralRangeCoversThemAll(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctl := filepath.Join(dir, "control.sock")
	// A network namespace of its own, whose range tender reads.
	setup := `exec unshare --net bash -c 'ip link set lo up && echo "1024 65535" > /proc/sys/net/ipv4/ip_local_port_range && exec "$@"' bash "$@"`
	r := startTenderFrom(t, setup, AsPID1, []string{"TENDER_CONTROL=" + ctl, "TENDER_WORKERS=3"}, "--", bin.testapp, "serve")
	p := &Pool{Run: r, Control: ctl, Dir: dir}
	p.waitFor("3 ready", 10*time.Second, nReady(3))
	if n := strings.Count(p.Stderr.String(), "worker ports come from the kernel's ephemeral port range"); n != 1 ||
		!strings.Contains(p.Stderr.String(), `range=1024-65535 why="it leaves no port from 1024 up outside it"`) {
		t.Errorf("tender said %d times that the workers' ports come from the ephemeral range, want once, with the range:\n%s", n, p.Stderr)
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// A worker whose port another program binds first is started again on another port, and that
// is not counted as a crash: here the test takes worker 0's port twice, while the worker waits
// a second before it binds, with TENDER_MAX_RESTARTS=1. The listener on the port must be the
// worker's for it to be ready: the test's accepts connections too.
func TestPoolWorkerWhosePortIsTakenStartsOnAnother(t *testing.T) {
	t.Parallel()
	env := []string{"TENDER_WORKERS=2", "TENDER_MAX_RESTARTS=1", "TENDER_RESTART_DELAY=10ms", "TENDER_RESTART_DELAY_MAX=20ms"}
	script := `[ "$TENDER_WORKER_ID" = 0 ] && exec "$0" serve -delay 1s; exec "$0" serve`
	p := startPool(t, env, "--", "/bin/sh", "-c", script, bin.testapp)
	tender := p.TenderPid()
	taken := map[string]bool{}
	seen := map[int]bool{}
	for len(taken) < 2 {
		var w Proc
		eventually(t, 10*time.Second, "a new worker 0", func() bool {
			if p.Exited() {
				t.Fatalf("tender exited with %d", p.Wait(time.Second))
			}
			for _, d := range descendants(tender) {
				if strings.Contains(d.Cmdline, "serve -delay") && !seen[d.Pid] {
					w = d
					return true
				}
			}
			return false
		})
		seen[w.Pid] = true
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", w.Pid))
		for _, kv := range strings.Split(string(env), "\x00") {
			if port, ok := strings.CutPrefix(kv, "PORT="); ok {
				l, err := net.Listen("tcp", "127.0.0.1:"+port)
				if err != nil {
					t.Fatalf("taking worker 0's port %s before it does: %v", port, err)
				}
				defer l.Close()
				taken[port] = true
			}
		}
	}
	st := p.waitFor("worker 0 ready on a third port", 15*time.Second, nReady(2))
	if port := portOf(t, p, st.Workers[0]); taken[port] {
		t.Errorf("worker 0 is ready on port %s, which the test holds", port)
	}
	log := p.Stderr.String()
	if n := strings.Count(log, "port was taken by another program"); n != 2 || strings.Contains(log, "crash loop") {
		t.Errorf("want the taken port said twice, and no crash loop:\n%s", log)
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// The seeds' fd bug in pool mode: a thousand failed starts, each with a spawn report built
// from the worker's captured output, and tender's fd count is the same after as before. Both
// counts are taken at rest, with both workers ready: the workers fail only while a file exists.
func TestPoolThousandFailedStartsLeakNoFd(t *testing.T) {
	t.Parallel()
	failing := filepath.Join(t.TempDir(), "failing")
	env := []string{"TENDER_MAX_RESTARTS=0", "TENDER_RESTART_DELAY=2ms", "TENDER_RESTART_DELAY_MAX=2ms", "TENDER_WORKERS=2"}
	p := startPool(t, env, "--", bin.testapp, "serve", "-fail-while", failing, "-say", "failing on purpose")
	tender := p.TenderPid()
	st := p.waitFor("2 ready", 10*time.Second, nReady(2))
	// At rest, but for a connection of the test's own status call still closing: the fewest
	// fds over a short while.
	restingFds := func() int {
		fewest := 1 << 30
		for i := 0; i < 20; i++ {
			fewest = min(fewest, len(openFds(t, tender)))
			time.Sleep(10 * time.Millisecond)
		}
		return fewest
	}
	fds0 := restingFds()

	must(t, os.WriteFile(failing, nil, 0o644))
	for _, w := range st.Workers {
		killInNamespace(t, p.Run, w.Pid, syscall.SIGKILL)
	}
	p.waitFor("1,000 failed starts", 60*time.Second, func(st apps.Status) bool {
		return len(st.Workers) == 2 && st.Workers[0].Restarts+st.Workers[1].Restarts >= 1000
	})
	must(t, os.Remove(failing))
	st = p.waitFor("2 ready again", 10*time.Second, nReady(2))
	if fds1 := restingFds(); fds1 != fds0 {
		t.Errorf("tender has %d fds after 1,000 failed starts, %d before", fds1, fds0)
	}
	if r := st.Workers[0].LastFailure; r == nil || !slices.Contains(r.Output, "failing on purpose") || r.Exit != "exit status 1" {
		t.Errorf("status has no spawn report with the worker's output and exit: %+v", r)
	}
	eventually(t, 5*time.Second, "no zombie", func() bool {
		for _, d := range descendants(tender) {
			if d.State == 'Z' {
				return false
			}
		}
		return true
	})
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

func TestPoolRecyclesAWorkerPastTheMemoryLimit(t *testing.T) {
	t.Parallel()
	p := startPool(t, []string{"TENDER_WORKERS=2", "TENDER_MEMORY_LIMIT=60MiB"}, "--", bin.testapp, "serve")
	st := p.waitFor("2 ready", 10*time.Second, nReady(2))
	old := st.Workers[0]
	port := portOf(t, p, old)
	// The answer may be cut off: the RSS can pass the limit while the worker still fills its
	// 80 MiB, and a request sent to the worker's own port, not through a front socket, is no
	// session that its drain waits for.
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://127.0.0.1:" + port + "/grow?mb=80"); err == nil {
		resp.Body.Close()
	}
	// New before old: a moment with the new worker ready while the old one still lives.
	sawBoth := false
	st = p.waitFor("worker 0 replaced", 15*time.Second, func(st apps.Status) bool {
		newReady, oldAlive := false, false
		for _, w := range st.Workers {
			if w.ID == old.ID && w.Pid == old.Pid {
				oldAlive = true
			}
			if w.ID == old.ID && w.Pid != old.Pid && w.State == "ready" {
				newReady = true
			}
		}
		sawBoth = sawBoth || (newReady && oldAlive)
		return newReady && !oldAlive
	})
	if !sawBoth {
		t.Log("the old worker was gone before a status showed both (drain was quick); checking the log order")
	}
	log := p.Stderr.String()
	iReplace, iReady := strings.Index(log, "replacing worker"), strings.LastIndex(log, "worker ready: id=0")
	if iReplace < 0 || !strings.Contains(log, "TENDER_MEMORY_LIMIT") || iReady < iReplace {
		t.Errorf("the log does not show a memory recycle with the new worker ready after it:\n%s", log)
	}
	for _, w := range st.Workers {
		if w.ID == old.ID && w.Restarts != 0 {
			t.Errorf("a recycle counted as a restart: %+v", w)
		}
	}
	p.Signal(syscall.SIGTERM)
	p.Wait(15 * time.Second)
}

// portOf finds the port of a worker from its environment.
func portOf(t *testing.T, p *Pool, w apps.WorkerStatus) string {
	t.Helper()
	host := hostPidOf(t, p.TenderPid(), w.Pid)
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", host))
	for _, kv := range strings.Split(string(env), "\x00") {
		if v, ok := strings.CutPrefix(kv, "PORT="); ok {
			return v
		}
	}
	t.Fatalf("worker %d has no PORT", w.ID)
	return ""
}

// A worker that stops answering (SIGSTOP) is replaced after TENDER_HEALTH_TIMEOUT.
func TestPoolReplacesAHungWorker(t *testing.T) {
	for _, proto := range []string{"http", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			env := []string{"TENDER_WORKERS=2", "TENDER_HEALTH_TIMEOUT=1s", "TENDER_KILL_GRACE=500ms", "TENDER_PROTOCOL=" + proto}
			if proto == "http" {
				env = append(env, "TENDER_LISTEN=127.0.0.1:"+freePort(t)) // http probes need the http protocol's front
			}
			p := startPool(t, env, "--", bin.testapp, "serve")
			st := p.waitFor("2 ready", 10*time.Second, nReady(2))
			hung := st.Workers[1]
			start := time.Now()
			killInNamespace(t, p.Run, hung.Pid, syscall.SIGSTOP)
			p.waitFor("the hung worker replaced", 15*time.Second, func(st apps.Status) bool {
				if !nReady(2)(st) {
					return false
				}
				for _, w := range st.Workers {
					if w.Pid == hung.Pid {
						return false
					}
				}
				return true
			})
			if took := time.Since(start); took < time.Second {
				t.Errorf("replaced after %v, before the 1s health timeout", took)
			}
			if !p.logged("stopped answering") {
				t.Errorf("the log does not say why:\n%s", p.Stderr)
			}
			p.Signal(syscall.SIGTERM)
			p.Wait(15 * time.Second)
		})
	}
}

// SIGTERM: the workers get SIGTERM, one that ignores it gets SIGKILL, and tender exits 0
// within the stop timeout.
func TestPoolGracefulStop(t *testing.T) {
	t.Parallel()
	sigs := filepath.Join(t.TempDir(), "signals")
	p := startPool(t, []string{"TENDER_WORKERS=3", "TENDER_STOP_TIMEOUT=2s", "TENDER_KILL_GRACE=5s"},
		"--", bin.testapp, "serve", "-ignore-term", "-signals", sigs)
	p.waitFor("3 ready", 10*time.Second, nReady(3))
	start := time.Now()
	p.Signal(syscall.SIGTERM)
	code := p.Wait(10 * time.Second)
	took := time.Since(start)
	if code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if took > 2500*time.Millisecond {
		t.Errorf("tender took %v to stop, past TENDER_STOP_TIMEOUT=2s", took)
	}
	if took < 900*time.Millisecond {
		t.Errorf("tender stopped after %v: workers ignoring SIGTERM should have had their grace", took)
	}
	if !strings.Contains(p.Stderr.String(), "did not stop on its stop signal; sending SIGKILL") {
		t.Errorf("the log does not show the SIGKILL:\n%s", p.Stderr)
	}
}

func TestPoolSignals(t *testing.T) {
	t.Parallel()
	sigs := filepath.Join(t.TempDir(), "signals")
	rec := filepath.Join(t.TempDir(), "starts")
	p := startPool(t, []string{"TENDER_WORKERS=2"}, "--", bin.testapp, "serve", "-signals", sigs, "-record", rec)
	st := p.waitFor("2 ready", 10*time.Second, nReady(2))

	// SIGUSR1 and SIGUSR2 reach every worker.
	p.Signal(syscall.SIGUSR1)
	p.Signal(syscall.SIGUSR2)
	eventually(t, 5*time.Second, "USR1 and USR2 in every worker", func() bool {
		b, _ := os.ReadFile(sigs)
		return strings.Count(string(b), " 10\n") == 2 && strings.Count(string(b), " 12\n") == 2
	})

	// SIGTTIN: one worker more; SIGTTOU: one less.
	p.Signal(syscall.SIGTTIN)
	p.waitFor("3 ready after SIGTTIN", 10*time.Second, nReady(3))
	// Standard signals do not queue: a second SIGTTOU sent while the first is pending is lost.
	p.Signal(syscall.SIGTTOU)
	p.waitFor("2 ready after SIGTTOU", 10*time.Second, nReady(2))
	p.Signal(syscall.SIGTTOU)
	st2 := p.waitFor("1 ready after a second SIGTTOU", 10*time.Second, nReady(1))
	if st2.Workers[0].ID != 0 || st2.Workers[0].Pid != st.Workers[0].Pid {
		t.Errorf("scaling down did not keep worker 0: %+v", st2.Workers)
	}

	// tender scale N and tender restart.
	if out, err := p.tenderCLI("scale", "3"); err != nil {
		t.Fatalf("tender scale 3: %v %s", err, out)
	}
	st = p.waitFor("3 ready after scale 3", 10*time.Second, nReady(3))
	if out, err := p.tenderCLI("restart"); err != nil {
		t.Fatalf("tender restart: %v %s", err, out)
	}
	p.waitFor("every worker replaced", 20*time.Second, func(now apps.Status) bool {
		return nReady(3)(now) && allNew(st, now)
	})
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

// A worker that is ready by READY=1 alone, without listening.
func TestPoolReadyByNotify(t *testing.T) {
	t.Parallel()
	p := startPool(t, []string{"TENDER_WORKERS=2"}, "--", bin.testapp, "serve", "-no-listen", "-notify")
	p.waitFor("2 ready by notify", 10*time.Second, nReady(2))
	if !p.logged("via=notify") {
		t.Errorf("the log does not say the workers were ready by notification:\n%s", p.Stderr)
	}
	p.Signal(syscall.SIGTERM)
	p.Wait(15 * time.Second)
}

func TestPoolStartTimeout(t *testing.T) {
	t.Parallel()
	env := []string{"TENDER_WORKERS=2", "TENDER_START_TIMEOUT=300ms", "TENDER_MAX_RESTARTS=1", "TENDER_RESTART_DELAY=10ms"}
	p := startPool(t, env, "--", bin.testapp, "serve", "-no-listen")
	if code := p.Wait(20 * time.Second); code == 0 {
		t.Errorf("tender exited 0 although no worker ever became ready")
	}
	if !strings.Contains(p.Stderr.String(), "did not become ready within 300ms") {
		t.Errorf("the log does not say why:\n%s", p.Stderr)
	}
}

// Worker output reaches tender's stdout unchanged, in whole lines labelled with their worker,
// even when several workers write at once.
func TestPoolOutputIsWholeLines(t *testing.T) {
	t.Parallel()
	p := startPool(t, []string{"TENDER_WORKERS=3"}, "--", bin.testapp, "serve")
	st := p.waitFor("3 ready", 10*time.Second, nReady(3))
	done := make(chan bool)
	for _, w := range st.Workers {
		port := portOf(t, p, w)
		go func() { httpGet(t, "http://127.0.0.1:"+port+"/print?n=2000"); done <- true }()
	}
	for range st.Workers {
		<-done
	}
	eventually(t, 5*time.Second, "6000 lines of output", func() bool {
		return strings.Count(p.Stdout.String(), "\n") >= 6000
	})
	// Each line labelled with its worker, as in a Procfile: web.N | ...
	lineRE := regexp.MustCompile(fmt.Sprintf(`^web\.([0-2]) \| (worker ([0-2])) line \d+ %s$`, strings.Repeat("x", 200)))
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(p.Stdout.String()), "\n") {
		m := lineRE.FindStringSubmatch(line)
		if m == nil || m[1] != m[3] {
			t.Fatalf("a broken or mislabelled line in tender's stdout: %q", line)
		}
		counts[m[2]]++
	}
	for id, n := range counts {
		if n != 2000 {
			t.Errorf("%s: %d lines, want 2000", id, n)
		}
	}
	p.Signal(syscall.SIGTERM)
	p.Wait(15 * time.Second)
}

// The control socket answers root and tender's own uid only.
func TestControlSocketRefusesOtherUsers(t *testing.T) {
	t.Parallel()
	p := startPool(t, []string{"TENDER_WORKERS=2"}, "--", bin.testapp, "serve")
	p.waitFor("2 ready", 10*time.Second, nReady(2))
	if fi, err := os.Stat(p.Control); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	// Another uid cannot even connect (mode 0600); even with the mode opened up, SO_PEERCRED
	// refuses it.
	cmd := exec.Command(bin.tender, "status")
	cmd.Env = append(cleanEnv(), "TENDER_CONTROL="+p.Control)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "permission denied") {
		t.Errorf("another uid got %v: %s", err, out)
	}
	must(t, os.Chmod(p.Control, 0o666))
	must(t, os.Chmod(p.Dir, 0o755))
	must(t, os.Chmod(filepath.Dir(p.Dir), 0o755))
	cmd = exec.Command(bin.tender, "status")
	cmd.Env = append(cleanEnv(), "TENDER_CONTROL="+p.Control)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "neither tender's uid 0 nor root") {
		t.Errorf("another uid with an open socket got %v: %s", err, out)
	}
	if !p.logged("refused a control request") {
		t.Errorf("tender did not log the refusal:\n%s", p.Stderr)
	}
	out, err := p.tenderCLI("status")
	if err != nil || !strings.Contains(out, "ID  PID") || !strings.Contains(out, "ready") {
		t.Errorf("root's tender status: %v\n%s", err, out)
	}
	p.Signal(syscall.SIGTERM)
	p.Wait(15 * time.Second)
}

// `tender status` run by another user than tender's says where that tender's socket is, and a
// root that lost CAP_DAC_OVERRIDE (as containers may drop it) is told whom to run it as. In a
// mount namespace of its own, with an empty /run and /tmp, so that no other test's tender
// answers.
func TestStatusNamesTheUserToBe(t *testing.T) {
	needRoot(t)
	t.Parallel()
	// cd /: the tmpfs on /tmp would hide the working directory of a checkout under /tmp, which
	// tender starts its app in.
	script := `set -e
cd /
unset XDG_RUNTIME_DIR
mount -t tmpfs -o mode=755 tmpfs /run
cp "$1" /run/tender-bin
mount -t tmpfs -o mode=1777 tmpfs /tmp
T=/run/tender-bin
setpriv --reuid 4242 --regid 4242 --clear-groups env TENDER_LOG_LEVEL=error $T -- sleep 30 &
for i in $(seq 100); do [ -S /tmp/tender-4242/control.sock ] && break; sleep 0.05; done
[ -S /tmp/tender-4242/control.sock ] || echo "tender made no socket in /tmp/tender-4242 in 5 s"
mkdir -m 700 /tmp/tender-junk /tmp/tender-e2e-x # not sockets' directories: never named
set +e
echo "== another user"; setpriv --reuid 4243 --regid 4243 --clear-groups $T status 2>&1; echo "rc=$?"
echo "== root without CAP_DAC_OVERRIDE"; setpriv --bounding-set -dac_override,-dac_read_search $T status 2>&1; echo "rc=$?"
echo "== root"; $T status 2>&1; echo "rc=$?"
kill %1; wait
`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "bash", "-c", script, "bash", bin.tender)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"== another user\ntender status: no running tender found (looked at [/run/tender/control.sock /tmp/tender-4243/control.sock]); " +
			"set TENDER_CONTROL to its socket, or run this command as the user of another tender: uid 4242 (/tmp/tender-4242)\nrc=1\n",
		"== root without CAP_DAC_OVERRIDE\ntender status: /tmp/tender-4242/control.sock: dial unix /tmp/tender-4242/control.sock: connect: permission denied " +
			"(root without CAP_DAC_OVERRIDE cannot reach another user's socket: run this command as uid 4242 (docker exec -u 4242))\nrc=1\n",
		"== root\nID  PID",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
}

// A rolling restart onto a broken build (the workers fail to start while a file exists) keeps
// the old workers serving and tender running; once the build is mended, the next SIGHUP
// replaces them all. It used to spend the crash budget on the replacements and stop the pool,
// healthy workers and all, with status 1.
func TestPoolRollingRestartOntoABrokenBuildKeepsTheOldWorkers(t *testing.T) {
	t.Parallel()
	failing := filepath.Join(t.TempDir(), "failing")
	env := []string{"TENDER_WORKERS=2", "TENDER_MAX_RESTARTS=3", "TENDER_RESTART_DELAY=10ms", "TENDER_RESTART_DELAY_MAX=20ms"}
	p := startPool(t, env, "--", bin.testapp, "serve", "-fail-while", failing)
	before := p.waitFor("2 ready", 10*time.Second, nReady(2))
	must(t, os.WriteFile(failing, nil, 0o644))
	p.Signal(syscall.SIGHUP)
	eventually(t, 10*time.Second, "the replacement given up", func() bool {
		return strings.Contains(p.Stderr.String(), "keeping the old one")
	})
	time.Sleep(300 * time.Millisecond) // time enough to stop the pool, were it to
	st := p.waitFor("2 ready", 5*time.Second, nReady(2))
	for i, w := range st.Workers {
		if w.Pid != before.Workers[i].Pid {
			t.Errorf("worker %d is pid %d, want the old one, %d", i, w.Pid, before.Workers[i].Pid)
		}
	}
	must(t, os.Remove(failing))
	p.Signal(syscall.SIGHUP)
	p.waitFor("every worker replaced", 15*time.Second, func(st apps.Status) bool { return nReady(2)(st) && allNew(before, st) })
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// A command that cannot be started at all ends tender at once with the status a shell gives
// (127 not found, 126 not executable), rather than after a crash loop, with status 1.
func TestPoolCommandNotFound(t *testing.T) {
	t.Parallel()
	p := startPool(t, []string{"TENDER_WORKERS=2"}, "--", "/no/such/app")
	if code := p.Wait(5 * time.Second); code != 127 {
		t.Errorf("exit status %d, want 127", code)
	}
}

// A second SIGHUP during a rolling restart keeps it one worker at a time, and rolls the
// worker being replaced once more at the end (its new process may predate the deploy the
// second SIGHUP is for). It used to start a second replacement at once.
func TestPoolSecondSighupKeepsOneAtATime(t *testing.T) {
	t.Parallel()
	p := startPool(t, []string{"TENDER_WORKERS=3"}, "--", bin.testapp, "serve", "-delay", "400ms")
	p.waitFor("3 ready", 10*time.Second, nReady(3))
	p.Signal(syscall.SIGHUP)
	time.Sleep(150 * time.Millisecond)
	p.Signal(syscall.SIGHUP)
	most := 0
	st := p.waitFor("the rolling restarts done", 20*time.Second, func(st apps.Status) bool {
		starting := 0
		for _, w := range st.Workers {
			if w.State == "starting" {
				starting++
			}
		}
		most = max(most, starting)
		return len(st.Workers) == 3 && len(ready(st)) == 3 && strings.Count(p.Stderr.String(), "worker ready") >= 3+4
	})
	if most > 1 {
		t.Errorf("%d workers were starting at once, want 1", most)
	}
	if n := strings.Count(p.Stderr.String(), "worker ready"); n != 3+4 {
		t.Errorf("%d workers became ready, want 3 and then 4 (the one rolled at the second SIGHUP, again): %v", n, st)
	}
	p.Signal(syscall.SIGTERM)
	p.Wait(15 * time.Second)
}

// A worker that never becomes ready is a failed start, a quick crash, however long it lived:
// with TENDER_START_TIMEOUT past TENDER_MIN_UPTIME (60s and 10s by default) the timed-out
// workers used to count as stable, restart at once, and never reach a crash loop.
func TestPoolWorkerNeverReadyIsAQuickCrash(t *testing.T) {
	t.Parallel()
	env := []string{"TENDER_WORKERS=2", "TENDER_START_TIMEOUT=300ms", "TENDER_MIN_UPTIME=100ms", "TENDER_MAX_RESTARTS=1", "TENDER_RESTART_DELAY=10ms"}
	p := startPool(t, env, "--", bin.testapp, "serve", "-no-listen")
	if code := p.Wait(20 * time.Second); code != 1 {
		t.Errorf("exit status %d, want 1: no worker ever became ready", code)
	}
	if !strings.Contains(p.Stderr.String(), "every worker is in a crash loop: none can serve; stopping") {
		t.Errorf("the log does not say why:\n%s", p.Stderr)
	}
}
