package reaper

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/internal/sigrelay"
)

func TestExitCodeAndString(t *testing.T) {
	for _, tc := range []struct {
		status unix.WaitStatus
		code   int
		text   string
	}{
		{0, 0, "exit status 0"},
		{7 << 8, 7, "exit status 7"},
		{255 << 8, 255, "exit status 255"},
		{unix.WaitStatus(unix.SIGKILL), 137, "killed by SIGKILL"},
		{unix.WaitStatus(unix.SIGTERM), 143, "killed by SIGTERM"},
		{unix.WaitStatus(unix.SIGSEGV) | 0x80, 139, "killed by SIGSEGV (core dumped)"},
		{unix.WaitStatus(64), 128 + 64, "killed by SIGRTMIN+30"},
		{unix.WaitStatus(33), 128 + 33, "killed by signal 33"},
	} {
		e := Exit{Pid: 1, Status: tc.status}
		if e.Code() != tc.code || e.String() != tc.text {
			t.Errorf("status %#x: got %d %q, want %d %q", int(tc.status), e.Code(), e.String(), tc.code, tc.text)
		}
	}
}

func TestParseStat(t *testing.T) {
	tail := " 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 4242 77 0" // fields 7 to 21, starttime, vsize, rss
	for stat, want := range map[string]Stat{
		"12 (sh) S 1 12 12" + tail:        {Name: "sh", State: 'S', PPid: 1, Pgid: 12, Start: 4242},
		"77 (a) b) (c) T 42 70 77" + tail: {Name: "a) b) (c", State: 'T', PPid: 42, Pgid: 70, Start: 4242},
		"9 (with space) Z 3 9 9" + tail:   {Name: "with space", State: 'Z', PPid: 3, Pgid: 9, Start: 4242},
		"9 (x) S 3 y 9" + tail:            {},
		"9 (short) Z 3 9 9 0 0":           {},
		"5 (x)":                           {},
		"garbage":                         {},
	} {
		got, ok := ParseStat([]byte(stat))
		if ok != (want != Stat{}) || ok && got != want {
			t.Errorf("ParseStat(%q) = %+v, %v; want %+v", stat, got, ok, want)
		}
	}
}

// ParseStat allocates nothing but the name: the pool reads every process's stat each time a
// worker becomes ready or exits.
func TestParseStatAllocatesOnlyTheName(t *testing.T) {
	stat := []byte("12 (sh) S 1 12 12 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 4242 77 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15")
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseStat(stat) }); n > 1 {
		t.Errorf("ParseStat allocates %v times a call, want at most 1", n)
	}
}

// A Proc is signalled only while its pid is still the process found: not once the pid has a
// different start time (another process given the same pid).
func TestProcSignalOnlyTheProcessFound(t *testing.T) {
	t.Run("through a pidfd", testProcSignal)
	t.Run("with kill where pidfds are refused", func(t *testing.T) {
		pidfdOpen = func(int, int) (int, error) { return -1, unix.EPERM } // as an old seccomp profile
		defer func() { pidfdOpen = unix.PidfdOpen }()
		testProcSignal(t)
	})
	t.Run("with kill where only pidfd_send_signal is refused", func(t *testing.T) {
		pidfdSendSignal = func(int, unix.Signal, *unix.Siginfo, int) error { return unix.EPERM }
		defer func() { pidfdSendSignal = unix.PidfdSendSignal }()
		testProcSignal(t)
	})
}

func testProcSignal(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var found Proc
	procs, err := Descendants(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if p.Pid == cmd.Process.Pid {
			found = p
		}
	}
	if found.Pid == 0 || found.Start == 0 {
		t.Fatalf("sleep (pid %d) not among the descendants %v", cmd.Process.Pid, procs)
	}
	other := Proc{found.Pid, found.Start + 1}
	if err := other.Signal(syscall.SIGTERM); err != syscall.ESRCH {
		t.Errorf("signalling pid %d with another start time: %v, want ESRCH", found.Pid, err)
	}
	if err := found.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("signalling the process found: %v", err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "terminated") {
		t.Errorf("sleep ended with %v, want terminated by SIGTERM", err)
	}
}

// Every signal tender forwards reaches C once, in the order sent, and none ends or stops the
// process that catches them: sent with kill to a helper process, this test binary run again.
func TestCatchSignalsDeliversEverySignal(t *testing.T) {
	if os.Getenv("TENDER_TEST_CATCH") == "1" {
		catchAndEcho()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCatchSignalsDeliversEverySignal$")
	cmd.Env = append(os.Environ(), "TENDER_TEST_CATCH=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // gone with the test, even if it hangs
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "nil dereference: panic" {
		t.Fatalf("helper said %q, want a panic of its nil dereference", lines.Text())
	}
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("helper said %q, want ready", lines.Text())
	}
	var want []syscall.Signal
	for _, sig := range sigrelay.Forwarded() {
		if !ownHandler && slices.Contains(osSignalCannot, sig) {
			continue
		}
		want = append(want, sig)
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatalf("sending %s: %v", SignalName(sig), err)
		}
		if !lines.Scan() {
			t.Fatalf("helper gone after %s: %v", SignalName(sig), cmd.Wait())
		}
		if got := lines.Text(); got != strconv.Itoa(int(sig)) {
			t.Fatalf("sent %s (%d), helper caught %s", SignalName(sig), sig, got)
		}
	}
	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if len(want) < 55 {
		t.Errorf("only %d signals forwarded: %v", len(want), want)
	}
}

func nilDereference() (outcome string) {
	defer func() {
		if _, ok := recover().(runtime.Error); ok {
			outcome = "panic"
		}
	}()
	var p *int
	return strconv.Itoa(*p)
}

// osSignalCannot are the signals os/signal cannot catch: the runtime leaves them at SIG_DFL.
var osSignalCannot = []syscall.Signal{unix.SIGSYS, unix.SIGPROF, 32, 34}

// catchAndEcho catches as tender does and prints each signal's number as it arrives, after
// checking that a fault of its own is still a panic.
func catchAndEcho() {
	s := CatchSignals()
	s.CatchRest()
	os.Stdout.WriteString("nil dereference: " + nilDereference() + "\n")
	os.Stdout.WriteString("ready\n")
	for sig := range s.C() {
		os.Stdout.WriteString(strconv.Itoa(int(sig.(syscall.Signal))) + "\n")
	}
}

// A child's stops reach whoever started it with Stops, before its exit; a watcher without
// gets the exit alone. In a helper process (this test binary run again): the reaper
// waits for every child of its process.
func TestStopsReachOnlyWhoAskedForThem(t *testing.T) {
	if os.Getenv("TENDER_TEST_STOPS") == "1" {
		reportStops()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStopsReachOnlyWhoAskedForThem$")
	cmd.Env = append(os.Environ(), "TENDER_TEST_STOPS=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	want := "with stops: stopped by SIGSTOP, killed by SIGKILL\nwithout: killed by SIGKILL\n"
	if err != nil || !strings.HasPrefix(string(out), want) {
		t.Errorf("got %q (%v), want %q", out, err, want)
	}
}

func reportStops() {
	r := New(hclog.NewNullLogger(), nil)
	for _, stops := range []bool{true, false} {
		exits := make(chan Exit, 2)
		name := "without:"
		if stops {
			name = "with stops:"
		}
		pid, err := r.Start(Child{Fork: func(*int32) (int, error) {
			return syscall.ForkExec("/bin/sleep", []string{"sleep", "10"}, &syscall.ProcAttr{})
		}, Exits: exits, Stops: stops})
		if err != nil {
			fmt.Println(err)
			return
		}
		_ = syscall.Kill(pid, syscall.SIGSTOP)
		for state := ""; state != "T"; time.Sleep(time.Millisecond) {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			if f := strings.Fields(string(b)); len(f) > 2 {
				state = f[2]
			}
		}
		time.Sleep(50 * time.Millisecond) // the stop is reported by now
		_ = syscall.Kill(pid, syscall.SIGKILL)
		var got []string
		for e := range exits {
			if e.Status.Stopped() {
				got = append(got, "stopped by "+SignalName(e.Status.StopSignal()))
				continue
			}
			got = append(got, e.String())
			break
		}
		fmt.Println(name, strings.Join(got, ", "))
	}
}

// A signal forwarded to a child that was reaped never reaches the process given its pid since.
// In a helper process that is PID 1 of a PID namespace of its own, where ns_last_pid hands a
// chosen pid to the next process: child A is started and reaped, B gets A's pid, and a SIGTERM
// forwarded to A must leave B alone.
func TestForwardNeverReachesAReusedPid(t *testing.T) {
	if os.Getenv("TENDER_TEST_REUSE") == "1" {
		forwardToReusedPid()
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (a PID namespace)")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestForwardNeverReachesAReusedPid$")
	cmd.Env = append(os.Environ(), "TENDER_TEST_REUSE=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "B alive\n") {
		t.Errorf("got %q (%v), want B alive", out, err)
	}
}

func forwardToReusedPid() {
	r := New(hclog.NewNullLogger(), nil)
	fork := func(*int32) (int, error) {
		return syscall.ForkExec("/bin/sleep", []string{"sleep", "60"}, &syscall.ProcAttr{})
	}
	exits := make(chan Exit, 1)
	a, err := r.Start(Child{Fork: fork, Exits: exits})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = unix.Kill(a, unix.SIGKILL)
	<-exits
	// The runtime's own threads take pids too: try until B has A's. B's stdout is open as long
	// as B lives, zombie or not.
	var b *exec.Cmd
	var alive io.ReadCloser
	for try := 0; try < 100; try++ {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(a-1)), 0); err != nil {
			fmt.Println("ns_last_pid:", err)
			return
		}
		b = exec.Command("/bin/sleep", "60")
		if alive, err = b.StdoutPipe(); err != nil {
			fmt.Println(err)
			return
		}
		if err := b.Start(); err != nil {
			fmt.Println(err)
			return
		}
		if b.Process.Pid == a {
			break
		}
		_ = b.Process.Kill()
	}
	if b.Process.Pid != a {
		fmt.Println("B never got A's pid")
		return
	}
	f := &Forwarder{Reaper: r, ToGroup: true, Log: hclog.NewNullLogger()}
	f.Forward(unix.SIGTERM, a)
	_ = alive.(*os.File).SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := alive.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
		fmt.Println("B alive")
	} else {
		fmt.Println("B killed by the SIGTERM forwarded to A")
	}
}
