package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenderinit/tender/reaper"
)

var modes = []struct {
	name string
	mode Mode
}{{"pid1", AsPID1}, {"subreaper", BelowShell}}

func TestExitStatusPassesThrough(t *testing.T) {
	for _, m := range modes {
		for _, tc := range []struct {
			args []string
			want int
		}{
			{[]string{"exit", "0"}, 0},
			{[]string{"exit", "1"}, 1},
			{[]string{"exit", "7"}, 7},
			{[]string{"exit", "255"}, 255},
			{[]string{"killself", "15"}, 128 + 15},
			{[]string{"killself", "9"}, 128 + 9},
			{[]string{"killself", "10"}, 128 + 10},
		} {
			t.Run(m.name+"/"+strings.Join(tc.args, "_"), func(t *testing.T) {
				t.Parallel()
				r := startTender(t, m.mode, nil, append([]string{"--", bin.testapp}, tc.args...)...)
				if got := r.Wait(10 * time.Second); got != tc.want {
					t.Errorf("exit status %d, want %d", got, tc.want)
				}
			})
		}
	}
}

// Exit statuses and messages of a command that cannot run, as execvp and a shell give them.
func TestCommandNotFoundOrNotExecutable(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "script")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// No "#!": execvp runs it with /bin/sh, and so does tender.
	noShebang := filepath.Join(dir, "noshebang")
	if err := os.WriteFile(noShebang, []byte("exit $(($1 + $2))\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A program for a machine no kernel knows (e_machine 0xbeef): not a script for /bin/sh.
	elf, err := os.ReadFile(bin.testapp)
	if err != nil {
		t.Fatal(err)
	}
	elf[18], elf[19] = 0xef, 0xbe
	otherArch := filepath.Join(dir, "otherarch")
	if err := os.WriteFile(otherArch, elf, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want int
		msg  string
	}{
		{"missing path", []string{"/no/such/program"}, 127, "no such file"},
		{"missing in PATH", []string{"no-such-program-anywhere"}, 127, "not found"},
		{"not executable", []string{noexec}, 126, "permission denied"},
		{"a directory", []string{"/tmp"}, 126, "permission denied"},
		{"an empty name", []string{""}, 127, "empty string"},
		{"a script without #!", []string{noShebang, "3", "4"}, 7, ""},
		{"a program for another machine", []string{otherArch}, 126, "exec format error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := startTender(t, AsPID1, nil, append([]string{"--"}, tc.args...)...)
			if got := r.Wait(10 * time.Second); got != tc.want {
				t.Errorf("exit status %d, want %d", got, tc.want)
			}
			if !strings.Contains(r.Stderr.String(), tc.msg) {
				t.Errorf("stderr does not say %q:\n%s", tc.msg, r.Stderr)
			}
		})
	}
}

func TestExitRemap(t *testing.T) {
	t.Parallel()
	r := startTender(t, AsPID1, []string{"TENDER_EXIT_REMAP=143:0,7:70"}, "--", bin.testapp, "killself", "15")
	if got := r.Wait(10 * time.Second); got != 0 {
		t.Errorf("SIGTERM death remapped to %d, want 0", got)
	}
	r = startTender(t, AsPID1, nil, "--exit-remap=7:70", "--", bin.testapp, "exit", "7")
	if got := r.Wait(10 * time.Second); got != 70 {
		t.Errorf("exit 7 remapped to %d, want 70", got)
	}
}

// readSignals parses the report of `testapp signals`: the signals received, in order.
func readSignals(path string) []int {
	b, _ := os.ReadFile(path)
	var sigs []int
	for _, line := range strings.Split(string(b), "\n") {
		if n, err := strconv.Atoi(strings.TrimSpace(line)); err == nil {
			sigs = append(sigs, n)
		}
	}
	return sigs
}

func waitReady(t *testing.T, path string) {
	t.Helper()
	eventually(t, 10*time.Second, "the app to be ready", func() bool {
		b, _ := os.ReadFile(path)
		return strings.HasPrefix(string(b), "ready")
	})
}

func waitSignals(t *testing.T, path string, want []int) {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("signals %v in %s", want, path), func() bool {
		return fmt.Sprint(readSignals(path)) == fmt.Sprint(want)
	})
}

func TestSignalsReachTheChild(t *testing.T) {
	const rtmin2 = 36 // SIGRTMIN+2
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			report := filepath.Join(t.TempDir(), "signals")
			r := startTender(t, m.mode, nil, "--", bin.testapp, "signals", report)
			waitReady(t, report)
			sent := []int{int(syscall.SIGHUP), int(syscall.SIGUSR1), int(syscall.SIGUSR2), rtmin2, int(syscall.SIGWINCH)}
			for i, s := range sent {
				r.Signal(syscall.Signal(s))
				waitSignals(t, report, sent[:i+1]) // one at a time: the order is checked too
			}
			r.Signal(syscall.SIGTERM)
			if code := r.Wait(10 * time.Second); code != 0 {
				t.Errorf("exit status %d after SIGTERM, want the app's 0", code)
			}
			if got := readSignals(report); fmt.Sprint(got) != fmt.Sprint(append(sent, 15)) {
				t.Errorf("the app received %v, want %v", got, append(sent, 15))
			}
		})
	}
}

// Every signal tender forwards reaches the app, once and in order, and none of them ends or
// stops tender. The test app is a Go program too, and os/signal cannot catch SIGSYS, SIGPROF, 32
// or 34 for it: those go to sleep(1) instead, which they kill, and tender passes that on.
func TestEverySignalReachesTheChild(t *testing.T) {
	t.Parallel()
	appCannot := []int{int(syscall.SIGSYS), int(syscall.SIGPROF), 32, 34}
	var sent []int
	for sig := 1; sig <= 64; sig++ {
		switch syscall.Signal(sig) {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, 33:
			continue
		}
		if !slices.Contains(appCannot, sig) {
			sent = append(sent, sig)
		}
	}
	report := filepath.Join(t.TempDir(), "signals")
	r := startTender(t, AsPID1, nil, "--", bin.testapp, "signals", report, "64")
	waitReady(t, report)
	// Without a handler of tender's own (not amd64 or arm64), os/signal catches the rarer signals
	// once the app has started.
	eventually(t, 5*time.Second, "tender to catch every signal it forwards", func() bool {
		caught := caughtSignals(t, r.TenderPid())
		return !slices.ContainsFunc(sent, func(sig int) bool { return !caught[sig] })
	})
	for i, sig := range sent {
		r.Signal(syscall.Signal(sig))
		waitSignals(t, report, sent[:i+1])
	}
	if code := r.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit status %d, want the app's 0 (it exits on signal 64)", code)
	}
	for _, sig := range appCannot {
		t.Run(reaper.SignalName(syscall.Signal(sig)), func(t *testing.T) {
			t.Parallel()
			report := filepath.Join(t.TempDir(), "ready")
			r := startTender(t, AsPID1, []string{"TENDER_LOG_LEVEL=debug"}, "--", "/bin/sh", "-c", `echo ready >"$1"; exec sleep 60`, "sh", report)
			waitReady(t, report)
			eventually(t, 5*time.Second, "tender to catch the signal", func() bool {
				return caughtSignals(t, r.TenderPid())[sig]
			})
			r.Signal(syscall.Signal(sig))
			if code := r.Wait(10 * time.Second); code != 128+sig {
				t.Errorf("exit status %d, want %d: the app killed by the signal tender forwarded", code, 128+sig)
			}
			if killed := "killed by " + reaper.SignalName(syscall.Signal(sig)); !r.logged(killed) {
				t.Errorf("tender did not log that the app was %s", killed)
			}
		})
	}
}

// Signals blocked in the process that started tender are still caught and forwarded: the Go
// runtime keeps them blocked in every thread it starts, but for those it must handle itself.
func TestSignalsBlockedAtStartAreForwarded(t *testing.T) {
	t.Parallel()
	report := filepath.Join(t.TempDir(), "signals")
	sent := []int{int(syscall.SIGUSR1), int(syscall.SIGUSR2), int(syscall.SIGWINCH), 36, int(syscall.SIGTERM)}
	setup := fmt.Sprintf(`set -- %s sigwrap 10,12,28,36,15 - "$@"`, bin.testapp)
	r := startTenderFrom(t, setup, AsPID1, nil, "--", bin.testapp, "signals", report)
	waitReady(t, report)
	for i, sig := range sent {
		r.Signal(syscall.Signal(sig))
		waitSignals(t, report, sent[:i+1])
	}
	if code := r.Wait(10 * time.Second); code != 0 {
		t.Errorf("exit status %d, want the app's 0 (it exits on SIGTERM)", code)
	}
}

// Real-time signals queue in the kernel: every one sent to tender is forwarded, not only one of
// each kind as for the standard signals.
func TestQueuedRealTimeSignalsAreAllForwarded(t *testing.T) {
	t.Parallel()
	const rtmin6, n = 40, 500
	report := filepath.Join(t.TempDir(), "signals")
	r := startTender(t, AsPID1, []string{"TENDER_LOG_LEVEL=trace"}, "--", bin.testapp, "signals", report)
	waitReady(t, report)
	for range n {
		r.Signal(rtmin6)
	}
	forwarded := func() int { return strings.Count(r.Stderr.String(), `forwarded signal: signal="SIGRTMIN+6"`) }
	eventually(t, 10*time.Second, fmt.Sprintf("%d forwards of SIGRTMIN+6", n), func() bool { return forwarded() >= n })
	if got := forwarded(); got != n {
		t.Errorf("SIGRTMIN+6 forwarded %d times, sent %d", got, n)
	}
}

// caughtSignals reads SigCgt of a process.
func caughtSignals(t *testing.T, pid int) map[int]bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	caught := map[int]bool{}
	for line := range strings.Lines(string(b)) {
		if hex, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			for sig := 1; sig <= 64; sig++ {
				caught[sig] = mask&(1<<(sig-1)) != 0
			}
		}
	}
	return caught
}

// The SIGPIPE the kernel sends tender when it writes to a pipe nobody reads (here its own
// stderr, at debug level) is tender's business: it neither dies of it nor forwards it.
func TestTenderKeepsItsOwnSigpipe(t *testing.T) {
	t.Parallel()
	report := filepath.Join(t.TempDir(), "signals")
	// stderr: a pipe whose reader has exited.
	r := startTenderFrom(t, `exec 2> >(exec true); wait $!`, AsPID1, []string{"TENDER_LOG_LEVEL=trace"},
		"--", bin.testapp, "signals", report)
	waitReady(t, report)
	r.Signal(syscall.SIGUSR1) // logged, at trace level, to the broken pipe
	waitSignals(t, report, []int{10})
	r.Signal(syscall.SIGTERM)
	if code := r.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit status %d, want the app's 0", code)
	}
	if got := readSignals(report); fmt.Sprint(got) != "[10 15]" {
		t.Errorf("the app received %v, want [10 15]: no SIGPIPE of tender's", got)
	}
}

func TestSignalRewrite(t *testing.T) {
	t.Parallel()
	report := filepath.Join(t.TempDir(), "signals")
	r := startTender(t, AsPID1, []string{"TENDER_SIGNAL_REWRITE=15:10,INT:0,SIGHUP:SIGUSR2"}, "--", bin.testapp, "signals", report, "12")
	waitReady(t, report)
	r.Signal(syscall.SIGINT) // dropped
	r.Signal(syscall.SIGTERM)
	waitSignals(t, report, []int{10})
	r.Signal(syscall.SIGHUP) // arrives as SIGUSR2, which ends the app
	if code := r.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
	if got := readSignals(report); fmt.Sprint(got) != "[10 12]" {
		t.Errorf("the app received %v, want [10 12]: INT dropped, TERM as USR1, HUP as USR2", got)
	}
}

// A shell pipeline: the signal reaches every process of it only when sent to the group.
func TestSignalTargetGroupOrChild(t *testing.T) {
	for _, target := range []string{"group", "child"} {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			// The shell ignores SIGUSR1; the two apps of its pipeline record it and exit on it.
			script := fmt.Sprintf(`trap "" USR1; %[1]s signals %[2]s 10 | %[1]s signals %[3]s 10`, bin.testapp, a, b)
			r := startTender(t, AsPID1, []string{"TENDER_SIGNAL_TARGET=" + target, "TENDER_KILL_GRACE=200ms"}, "--", "/bin/sh", "-c", script)
			waitReady(t, a)
			waitReady(t, b)
			r.Signal(syscall.SIGUSR1)
			if target == "group" {
				if code := r.Wait(10 * time.Second); code != 0 {
					t.Fatalf("exit status %d, want 0 (both apps exit on USR1)", code)
				}
				if fmt.Sprint(readSignals(a), readSignals(b)) != "[10] [10]" {
					t.Errorf("pipeline received %v and %v, want USR1 in both", readSignals(a), readSignals(b))
				}
				return
			}
			time.Sleep(300 * time.Millisecond)
			if len(readSignals(a))+len(readSignals(b)) != 0 {
				t.Fatalf("with target=child the pipeline got %v and %v, want nothing", readSignals(a), readSignals(b))
			}
			r.Signal(syscall.SIGTERM) // ends the shell; tender then ends the pipeline
			r.Wait(10 * time.Second)
		})
	}
}

// tini's process group test: the child ignores the signal, its own child does not.
func TestProcessGroupSignal(t *testing.T) {
	t.Parallel()
	pids := filepath.Join(t.TempDir(), "pids")
	r := startTender(t, AsPID1, nil, "--", bin.testapp, "pgroup", pids)
	waitFile(t, pids, 10*time.Second)
	r.Signal(syscall.SIGHUP)
	if code := r.Wait(10 * time.Second); code != 128+int(syscall.SIGHUP) {
		t.Errorf("exit status %d, want %d: the grandchild dies of SIGHUP and the child passes it on", code, 128+int(syscall.SIGHUP))
	}
}

func TestOrphansAreReaped(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			done := filepath.Join(t.TempDir(), "done")
			r := startTender(t, m.mode, nil, "--", bin.testapp, "orphans", "100", done)
			waitFile(t, done, 20*time.Second)
			tender := r.TenderPid()
			// Every orphan is reaped, not merely re-parented: in the end only the app is left.
			eventually(t, 5*time.Second, "only the app below tender, no zombie", func() bool {
				return len(descendants(tender)) == 1
			})
			r.Signal(syscall.SIGTERM)
			if code := r.Wait(10 * time.Second); code != 128+int(syscall.SIGTERM) && code != 0 {
				t.Errorf("exit status %d", code)
			}
		})
	}
}

// A background process that ignores SIGTERM is left when the main child exits: it gets
// SIGTERM, then SIGKILL after the grace, and tender exits with the main child's status.
func TestLeftoverProcessesAreEnded(t *testing.T) {
	for _, m := range modes {
		for _, grace := range []time.Duration{0, 800 * time.Millisecond} {
			t.Run(fmt.Sprintf("%s/grace=%v", m.name, grace), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				pidFile, goFile := filepath.Join(dir, "pid"), filepath.Join(dir, "go")
				r := startTender(t, m.mode, []string{"TENDER_KILL_GRACE=" + grace.String()}, "--", bin.testapp, "leave", pidFile, "7", goFile)
				waitFile(t, pidFile, 10*time.Second)
				leftover := findBelow(t, r.cmd.Process.Pid, "ignore-term")
				start := time.Now()
				if err := os.WriteFile(goFile, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				code := r.Wait(grace + 5*time.Second)
				took := time.Since(start)
				if code != 7 {
					t.Errorf("exit status %d, want the main child's 7", code)
				}
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", leftover.Pid)); err == nil {
					if p, ok := readProc(leftover.Pid); ok && p.State != 'Z' {
						t.Errorf("the leftover %d is still alive: %+v", leftover.Pid, p)
					}
				}
				if took < grace-100*time.Millisecond || took > grace+2*time.Second {
					t.Errorf("tender took %v to end the leftover, want about the grace %v", took, grace)
				}
			})
		}
	}
}

// A leftover that honours SIGTERM ends tender at once, not after the grace.
func TestLeftoverThatHonoursTermEndsQuickly(t *testing.T) {
	// A stopped leftover gets SIGCONT after SIGTERM, as systemd sends it, so that it can act on
	// the SIGTERM too, rather than wait stopped for the SIGKILL.
	for name, script := range map[string]string{
		"running": bin.testapp + " sleep 100 & exit 3",
		"stopped": bin.testapp + " sleep 100 & kill -STOP $!; exit 3",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, mode := range modes {
				r := startTender(t, mode.mode, []string{"TENDER_KILL_GRACE=30s"}, "--", "/bin/sh", "-c", script)
				start := time.Now()
				if code := r.Wait(10 * time.Second); code != 3 {
					t.Errorf("%s: exit status %d, want 3", mode.name, code)
				}
				if took := time.Since(start); took > 5*time.Second {
					t.Errorf("%s: tender took %v although the leftover ends on SIGTERM", mode.name, took)
				}
			}
		})
	}
}

// Not PID 1, tender is a subreaper: an orphan of its app is re-parented to tender, not to
// the namespace's PID 1 (the shell).
func TestSubreaperAdoptsOrphans(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	script := fmt.Sprintf(`%s leave %s 0; exec %s sleep 100`, bin.testapp, pidFile, bin.testapp)
	r := startTender(t, BelowShell, nil, "--", "/bin/sh", "-c", script)
	waitFile(t, pidFile, 10*time.Second)
	tender := r.TenderPid()
	orphan := findBelow(t, r.cmd.Process.Pid, "ignore-term")
	// Its parent (leave) exits just after the pid file appears; then it is an orphan, and its
	// new parent must be tender, not the shell that is PID 1.
	var parent int
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		p, _ := readProc(orphan.Pid)
		if parent = p.PPid; parent == tender {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if parent != tender {
		t.Errorf("the orphan's parent is %d, want tender %d", parent, tender)
	}
	// Running below another init is normal (docker run --init): no warning about it.
	if strings.Contains(r.Stderr.String(), "WARN") {
		t.Errorf("tender warned below a shell:\n%s", r.Stderr)
	}
	r.Signal(syscall.SIGTERM)
	r.Wait(15 * time.Second)
}

// tender keeps no directory busy: it moves to / (dumb-init's own test reads its cwd there),
// while the app, a restarted one too, starts in the directory tender was started in.
func TestTenderLeavesItsStartDirectory(t *testing.T) {
	needRoot(t)
	t.Parallel()
	dir := t.TempDir()
	script := `readlink /proc/$PPID/cwd; readlink /proc/$$/cwd; [ -e ` + dir + `/again ] && exit 0; touch ` + dir + `/again; exit 1`
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child", bin.tender, "--", "/bin/sh", "-c", script)
	cmd.Dir = dir
	r := startCmd(t, cmd, []string{"TENDER_RESTART=on-failure", "TENDER_RESTART_DELAY=10ms"}, 1)
	if code := r.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit status %d, want the restarted app's 0", code)
	}
	if got, want := r.Stdout.String(), "/\n"+dir+"\n/\n"+dir+"\n"; got != want {
		t.Errorf("tender's and the app's working directories, twice: %q, want %q", got, want)
	}
}

// A command line without a command is a usage error: status 2 and a usage line, as every Unix
// tool gives.
func TestNoCommandPrintsUsage(t *testing.T) {
	t.Parallel()
	var stderr strings.Builder
	cmd := exec.Command(bin.tender)
	cmd.Stderr = &stderr
	err := cmd.Run()
	if code := exitCode(cmd.ProcessState, err); code != 2 {
		t.Errorf("exit status %d, want 2", code)
	}
	if !slices.ContainsFunc(strings.Split(stderr.String(), "\n"), func(l string) bool { return strings.HasPrefix(l, "usage: ") }) {
		t.Errorf("no line starts with usage: in %q", stderr.String())
	}
}

// A leftover that is running gets SIGTERM alone, never SIGCONT on its heels (dumb-init's test
// pops the last signal received first, and must read 15), and when it ignores the SIGTERM
// tender says which process it waits for, and which gets SIGKILL.
func TestLeftoverGetsSigtermAloneAndIsNamed(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			report := filepath.Join(t.TempDir(), "signals")
			// The leftover records each signal and goes on until SIGRTMIN+30.
			script := bin.testapp + ` signals "$1" 64 & while ! [ -s "$1" ]; do sleep 0.01; done; exit 3`
			r := startTender(t, m.mode, []string{"TENDER_KILL_GRACE=1s"}, "--", "/bin/sh", "-c", script, "sh", report)
			if code := r.Wait(10 * time.Second); code != 3 {
				t.Errorf("exit status %d, want the main child's 3", code)
			}
			if got := readSignals(report); fmt.Sprint(got) != "[15]" {
				t.Errorf("the running leftover received %v, want [15]: SIGTERM alone", got)
			}
			for _, line := range []string{"waiting for the processes left to end on SIGTERM", "sending SIGKILL to the processes left"} {
				if !r.logged(line) || !strings.Contains(r.Stderr.String(), "(testapp)") {
					t.Errorf("tender did not say %q naming the leftover (testapp)", line)
				}
			}
		})
	}
}
