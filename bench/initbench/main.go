// Command initbench compares tender with tini, dumb-init and catatonit on this machine, in one
// run, and prints a Markdown table (also written to bench/out/init.md):
//
//   - start-up: `X -- /bin/true`, median wall time over many runs, the inits taking turns run by
//     run, and the median difference of each to tini's run of the same turn;
//   - idle RSS of the init with one sleeping child;
//   - size of the binary;
//   - time to reap 10,000 orphans made by a test program, with the init as PID 1, and the
//     zombies left: the median of -reap-runs runs, taken in rounds across the inits.
//
// It installs the peers from Debian when they are missing and it runs as root.
// Run it with `make bench`.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tenderinit/tender/bench/internal/kit"
)

type initProg struct {
	name   string
	argv   []string // the init and its arguments up to the child's command
	binary string   // the file whose size is reported
}

var (
	runs       = flag.Int("runs", 1000, "start-up runs per init")
	orphans    = flag.Int("orphans", 10000, "orphans to reap")
	orphanRuns = flag.Int("reap-runs", 5, "orphan runs per init, in rounds; the table has the median")
	outDir     = flag.String("out", "bench/out", "where the table and raw results go")
)

func main() {
	flag.Parse()
	kit.Name = "initbench"
	kit.Ensure(map[string]string{"tini": "tini", "dumb-init": "dumb-init", "catatonit": "catatonit", "file": "file"})
	kit.Must(os.MkdirAll(*outDir, 0o755))
	testapp := filepath.Join(*outDir, "testapp")
	kit.Build(testapp, "./internal/testapp")
	tender, _ := filepath.Abs("bin/tender")
	kit.Build(tender, "./init")
	floorBin, floorDepsBin := filepath.Join(*outDir, "floor"), filepath.Join(*outDir, "floor-deps")
	kit.Build(floorBin, "./bench/initbench/floor")
	kit.Build(floorDepsBin, "./bench/initbench/floor", "-tags=tenderdeps")

	tiniStatic := "/usr/bin/tini-static"
	if _, err := os.Stat(tiniStatic); err != nil {
		tiniStatic = kit.LookPath("tini")
	}
	inits := []initProg{
		{"tender", []string{tender, "--"}, tender},
		{"tini", []string{kit.LookPath("tini"), "-s", "--"}, tiniStatic},
		{"dumb-init", []string{kit.LookPath("dumb-init")}, kit.LookPath("dumb-init")},
		{"catatonit", []string{kit.LookPath("catatonit"), "--"}, kit.LookPath("catatonit")},
	}

	var table bytes.Buffer
	fmt.Fprintf(&table, "| init | `X -- /bin/true` (median; to tini's run of the same turn) | idle RSS, one sleeping child (anonymous) | binary | %d orphans as PID 1: wall time, the init's CPU (median of %d) | zombies left (most) |\n", *orphans, *orphanRuns)
	fmt.Fprintf(&table, "|---|---|---|---|---|---|\n")
	results := map[string]map[string]float64{}
	floors := []initProg{{name: "floor", argv: []string{floorBin, "--"}}, {name: "floor-deps", argv: []string{floorDepsBin, "--"}}}
	starts := startups(append(slices.Clone(inits), floors...))
	reaps := reapRounds(inits, testapp)
	for _, in := range inits {
		start := starts[in.name]
		rss, anon := idleRSS(in, testapp)
		size := fileSize(in.binary)
		reap, cpu, zombies := reaps[in.name].median()
		results[in.name] = map[string]float64{"startup_ms": start.median, "startup_to_tini_ms": start.toTini, "rss_kib": float64(rss), "anon_kib": float64(anon), "size_bytes": float64(size),
			"reap_ms": reap, "reap_cpu_ms": cpu, "zombies": float64(zombies)}
		fmt.Fprintf(&table, "| %s | %.2f ms (%+.2f) | %.1f MiB (%.1f MiB) | %.2f MiB%s | %.0f ms, %.0f ms CPU | %d |\n",
			in.name, start.median, start.toTini, float64(rss)/1024, float64(anon)/1024, float64(size)/(1<<20), linkage(in.binary), reap, cpu, zombies)
	}
	t, tini := results["tender"], results["tini"]
	fmt.Fprintf(&table, "\ntender vs tini: start-up %+.2f ms (tender's includes the clean start of the child); "+
		"orphans: wall %+.0f ms, init CPU %+.0f ms. The wall time is mostly the test program making the orphans.\n",
		t["startup_to_tini_ms"], t["reap_ms"]-tini["reap_ms"], t["reap_cpu_ms"]-tini["reap_cpu_ms"])
	floor, floorDeps := starts["floor"], starts["floor-deps"]
	fmt.Fprintf(&table, "\nThe floor for a Go init, a Go program that only forks and execs the command and waits for it "+
		"(bench/initbench/floor): %.2f ms, %+.2f ms from tini; tender is %+.2f ms from that floor. "+
		"The same program linking tender's packages, with their initialisation and a binary of tender's size: %.2f ms, %+.2f ms from tini.\n",
		floor.median, floor.toTini, t["startup_to_tini_ms"]-floor.toTini, floorDeps.median, floorDeps.toTini)
	fmt.Fprintf(&table, "\nTargets (the footprint of a Go init):\n\n| target | result |\n|---|---|\n")
	target := func(what string, got, limit float64, unit string) {
		verdict := "met"
		if got > limit {
			verdict = "**missed**"
		}
		fmt.Fprintf(&table, "| %s at most %g %s | %s: %.2f %s |\n", what, limit, unit, verdict, got, unit)
	}
	target("binary", t["size_bytes"]/(1<<20), 5, "MiB")
	target("idle RSS", t["rss_kib"]/1024, 5, "MiB")
	target("tender's own (anonymous) memory", t["anon_kib"]/1024, 1.5, "MiB")
	target("start-up beyond a bare Go program that only runs its argument (the floor)", t["startup_to_tini_ms"]-floor.toTini, 1.5, "ms")
	results["floor"] = map[string]float64{"startup_ms": floor.median, "startup_to_tini_ms": floor.toTini}
	results["floor-deps"] = map[string]float64{"startup_ms": floorDeps.median, "startup_to_tini_ms": floorDeps.toTini}
	fmt.Fprintf(&table, "\nMachine: %s, %d CPUs; %s; `make bench` on %s.\n", uname(), kit.CPUs(), goVersion(), time.Now().UTC().Format("2006-01-02"))

	os.Stdout.Write(table.Bytes())
	kit.Must(os.WriteFile(filepath.Join(*outDir, "init.md"), table.Bytes(), 0o644))
	raw, _ := json.MarshalIndent(results, "", "  ")
	kit.Must(os.WriteFile(filepath.Join(*outDir, "init.json"), raw, 0o644))
}

// startup is an init's start-up: the median wall time of `X -- /bin/true`, and the median of
// its difference to tini's run of the same turn, in ms.
type startup struct{ median, toTini float64 }

// startups times `X -- /bin/true` -runs times for each init, the inits taking turns run by run
// (the order rotating): this VM's speed drifts by a fifth within minutes, and so the drift
// falls on every init alike, and on each pair of runs compared with tini's hardly at all. Each
// run is a fork, an exec and a wait of this program's, the same for every init (hyperfine -N
// measures the same way).
func startups(inits []initProg) map[string]startup {
	times := make([][]float64, len(inits))
	run := func(i int) {
		argv := append(slices.Clone(inits[i].argv), "/bin/true")
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "TENDER_LOG_LEVEL=error")
		t0 := time.Now()
		kit.Must(cmd.Run())
		times[i] = append(times[i], float64(time.Since(t0).Nanoseconds())/1e6)
	}
	for range 30 { // warm-up: the page cache, the CPU's caches
		for i := range inits {
			run(i)
		}
	}
	for i := range times {
		times[i] = times[i][:0]
	}
	for turn := range *runs {
		for k := range inits {
			run((turn + k) % len(inits))
		}
	}
	tini := slices.IndexFunc(inits, func(in initProg) bool { return in.name == "tini" })
	res := map[string]startup{}
	for i, in := range inits {
		diffs := make([]float64, len(times[i]))
		for turn := range diffs {
			diffs[turn] = times[i][turn] - times[tini][turn]
		}
		res[in.name] = startup{median: medianOf(times[i]), toTini: medianOf(diffs)}
	}
	return res
}

// idleRSS is the init's resident set, in KiB, once it has settled with one sleeping child, and
// the anonymous part of it (what is not the binary and libraries mapped from the page cache).
func idleRSS(in initProg, testapp string) (rss, anon int) {
	cmd := exec.Command(in.argv[0], append(in.argv[1:], testapp, "sleep", "30")...)
	kit.Must(cmd.Start())
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	time.Sleep(time.Second)
	return kit.StatusKiB(cmd.Process.Pid, "VmRSS"), kit.StatusKiB(cmd.Process.Pid, "RssAnon")
}

// reapRuns are the wall times, CPU times and zombies of one init's orphan runs.
type reapRuns struct {
	ms, cpuMs []float64
	zombies   int // the most left by any run
}

// reapRounds runs reapOrphans for every init, -reap-runs rounds of them in turn, so that a
// slow spell of the machine falls on all of them rather than on one.
func reapRounds(inits []initProg, testapp string) map[string]*reapRuns {
	runs := map[string]*reapRuns{}
	for range *orphanRuns {
		for _, in := range inits {
			r := runs[in.name]
			if r == nil {
				r = &reapRuns{}
				runs[in.name] = r
			}
			ms, cpu, zombies := reapOrphans(in, testapp)
			r.ms, r.cpuMs, r.zombies = append(r.ms, ms), append(r.cpuMs, cpu), max(r.zombies, zombies)
		}
	}
	return runs
}

// median is the median wall and CPU time of the runs, and the most zombies any left.
func (r *reapRuns) median() (ms, cpuMs float64, zombies int) {
	return medianOf(r.ms), medianOf(r.cpuMs), r.zombies
}

func medianOf(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// reapOrphans runs the init as PID 1 of a new PID namespace over a program that makes the
// orphans; it returns how long the whole run took, the CPU the init spent, and the zombies left
// when the program said it was done (after waiting for the reaper to catch up for up to 5s).
func reapOrphans(in initProg, testapp string) (ms, cpuMs float64, zombies int) {
	done := filepath.Join(*outDir, "orphans-"+in.name+".done")
	os.Remove(done)
	argv := append([]string{"--pid", "--fork", "--mount-proc"}, in.argv...)
	argv = append(argv, testapp, "orphans", strconv.Itoa(*orphans), done)
	cmd := exec.Command("unshare", argv...)
	start := time.Now()
	kit.Must(cmd.Start())
	for {
		if _, err := os.Stat(done); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	// Count the zombies in the namespace until none is left, or 5s.
	deadline := time.Now().Add(5 * time.Second)
	for {
		zombies = countZombiesBelow(cmd.Process.Pid)
		if zombies == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ms = float64(time.Since(start).Microseconds()) / 1000
	init := firstChild(cmd.Process.Pid)
	cpuMs = cpuTime(init)
	syscall.Kill(init, syscall.SIGTERM)
	cmd.Wait()
	return ms, cpuMs, zombies
}

// cpuTime is the CPU time pid has used, in ms: the sum over its threads of the first field of
// /proc/<pid>/task/<tid>/schedstat (nanoseconds on the CPU).
func cpuTime(pid int) float64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var ns float64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			v, _ := strconv.ParseFloat(f[0], 64)
			ns += v
		}
	}
	return ns / 1e6
}

func countZombiesBelow(root int) int {
	parents := map[int]int{}
	states := map[int]byte{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		ppid, _ := strconv.Atoi(f[1])
		parents[pid], states[pid] = ppid, f[0][0]
	}
	n := 0
	for pid, st := range states {
		if st != 'Z' {
			continue
		}
		for p := parents[pid]; p > 1; p = parents[p] {
			if p == root {
				n++
				break
			}
		}
	}
	return n
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	kit.Must(err)
	return fi.Size()
}

func linkage(path string) string {
	out, _ := exec.Command("file", "-L", path).Output()
	switch {
	case bytes.Contains(out, []byte("statically linked")) || bytes.Contains(out, []byte("static-pie")):
		return " (static)"
	case bytes.Contains(out, []byte("dynamically linked")):
		return " (dynamic)"
	}
	return ""
}

func uname() string {
	var u syscall.Utsname
	syscall.Uname(&u)
	b := make([]byte, 0, len(u.Release))
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return "Linux " + string(b)
}

func goVersion() string {
	out, _ := exec.Command("go", "env", "GOVERSION").Output()
	return strings.TrimSpace(string(out))
}

// firstChild is a child of pid, 0 when it has none yet.
func firstChild(pid int) int {
	if c := kit.Children(pid); len(c) > 0 {
		return c[0]
	}
	return 0
}
