package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// onTerminal is a shell script run as the session leader of a new pseudo-terminal, which is
// its stdin, stdout and stderr, with tender in it.
type onTerminal struct {
	cmd  *exec.Cmd
	ptmx *os.File // the terminal's other side: what is written there is typed
	mu   sync.Mutex
	out  bytes.Buffer // what came out on the terminal
	end  chan error
	eof  chan struct{} // the terminal is closed: out is whole
}

func startOnTerminal(t *testing.T, shell []string, script string) *onTerminal {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pts.Close()

	o := &onTerminal{cmd: exec.Command(shell[0], append(shell[1:], script)...), ptmx: ptmx, end: make(chan error, 1), eof: make(chan struct{})}
	o.cmd.Env = append(cleanEnv(), "TENDER_CONTROL=off", "TENDER_LOG_LEVEL=debug")
	o.cmd.Stdin, o.cmd.Stdout, o.cmd.Stderr = pts, pts, pts
	o.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := o.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sid := o.cmd.Process.Pid
	t.Cleanup(func() { killSession(sid) })
	go func() {
		defer close(o.eof)
		b := make([]byte, 4096)
		for {
			n, err := ptmx.Read(b)
			o.mu.Lock()
			o.out.Write(b[:n])
			o.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { o.end <- o.cmd.Wait() }()
	return o
}

// wait waits for the shell to end, at most d, and for the last of its output.
func (o *onTerminal) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case err := <-o.end:
		select {
		case <-o.eof:
		case <-time.After(2 * time.Second):
		}
		if err != nil {
			t.Errorf("the shell ended with %v; terminal:\n%s", err, o.output())
		}
	case <-time.After(d):
		t.Fatalf("the shell did not end within %v; terminal:\n%s", d, o.output())
	}
}

// waitOutput waits until the terminal has shown s.
func (o *onTerminal) waitOutput(t *testing.T, s string) {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("%q on the terminal", s), func() bool { return strings.Contains(o.output(), s) })
}

func (o *onTerminal) output() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.out.String()
}

// killSession kills every process left in session sid.
func killSession(sid int) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, ok := statField(pid, 6); ok && s == sid {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// statField is field n (from 1) of /proc/<pid>/stat, for the numeric fields after the name.
func statField(pid, n int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	fields := strings.Fields(string(b[i+2:])) // from field 3, the state
	if n-3 >= len(fields) {
		return 0, false
	}
	v, err := strconv.Atoi(fields[n-3])
	return v, err == nil
}

// With `stty tostop`, tender's own writes to the terminal, once the app has it, make the
// kernel send SIGTTOU to tender's process group and retry the write: below a job-control shell
// tender, which catches SIGTTOU, spun at full speed forwarding it and stopped its app (found by
// porting dumb-init's terminal tests); as the session leader, with nobody to continue a stopped
// group, the write failed and the log line was lost. Now tender writes, as tini does, and ends
// with its app.
func TestTostopTerminal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		shell  []string
		script string
	}{
		{"below a job-control shell", []string{"sh", "-m", "-c"}, "stty tostop && " + bin.tender + " -- sleep 0.3; echo exit=$?"},
		{"session leader", []string{"sh", "-c"}, "stty tostop && exec " + bin.tender + " -- sleep 0.3; echo exit=$?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := startOnTerminal(t, tc.shell, tc.script)
			o.wait(t, 10*time.Second)
			out := o.output()
			if !strings.Contains(out, "child exited") {
				t.Errorf("tender's log line written after the app ended is missing:\n%s", out)
			}
			if tc.shell[1] == "-m" && !strings.Contains(out, "exit=0") {
				t.Errorf("tender did not exit 0:\n%s", out)
			}
			if cpu := o.cmd.ProcessState.UserTime() + o.cmd.ProcessState.SystemTime(); cpu > time.Second {
				t.Errorf("tender used %v of CPU", cpu)
			}
		})
	}
}

// A tender started in the background of an interactive shell leaves the terminal to the shell:
// the terminal's foreground group stays the shell's while tender's app runs (it was the app's,
// and the shell's next read failed).
func TestBackgroundTenderLeavesTheTerminal(t *testing.T) {
	running := filepath.Join(t.TempDir(), "running")
	// sh -m: job control, so that the background job gets a process group of its own. The
	// shell waits for the app with builtins only: a foreground job would take the terminal.
	o := startOnTerminal(t, []string{"sh", "-m", "-c"}, fmt.Sprintf(`%s -- sh -c ': > %s; exec sleep 3' &
		while [ ! -e %s ]; do :; done; read -r stat < /proc/$$/stat; echo "shell: $stat"; kill $!; wait`, bin.tender, running, running))
	o.wait(t, 20*time.Second)
	if pgrp, fg := terminalOf(t, o.output(), "shell: "); pgrp != o.cmd.Process.Pid || fg != pgrp {
		t.Errorf("the terminal's foreground group is %d, want the shell's, %d:\n%s", fg, o.cmd.Process.Pid, o.output())
	}
}

// A restarted app gets the terminal as the first one did, and a shell that started tender
// without job control has it back once tender is done: tender takes it back when an app ends,
// as a shell does when a job ends (it stayed with the first app's group, gone).
func TestRestartedAppGetsTheTerminal(t *testing.T) {
	dir := t.TempDir()
	app := filepath.Join(dir, "app")
	script := fmt.Sprintf("#!/bin/sh\nread -r stat < /proc/$$/stat\necho \"app-stat: $stat\"\n[ -e %s/ran ] && exit 0\n: > %s/ran; exit 1\n", dir, dir)
	if err := os.WriteFile(app, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	o := startOnTerminal(t, []string{"sh", "-c"}, "TENDER_RESTART=on-failure TENDER_RESTART_DELAY=10ms "+bin.tender+" -- "+app+
		`; read -r stat < /proc/$$/stat; echo "shell: $stat"`)
	o.wait(t, 10*time.Second)
	out := o.output()
	if n := strings.Count(out, "app-stat: "); n != 2 {
		t.Fatalf("the app ran %d times, want 2:\n%s", n, out)
	}
	for _, who := range []string{"app-stat: ", "shell: "} {
		for rest := out; strings.Contains(rest, who); {
			_, rest, _ = strings.Cut(rest, who)
			if pgrp, fg := terminalOf(t, rest, ""); fg != pgrp {
				t.Errorf("%sthe terminal's foreground group is %d, not its own, %d:\n%s", who, fg, pgrp, out)
			}
		}
	}
}

// terminalOf reads the process group and the terminal's foreground group from the
// /proc/<pid>/stat line that follows prefix in out.
func terminalOf(t *testing.T, out, prefix string) (pgrp, fg int) {
	t.Helper()
	_, stat, ok := strings.Cut(out, prefix)
	if !ok {
		t.Fatalf("no %q line:\n%s", prefix, out)
	}
	stat, _, _ = strings.Cut(stat, "\n")
	// pid (comm) state ppid pgrp session tty_nr tpgid
	f := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	if len(f) < 6 {
		t.Fatalf("a short stat line: %q", stat)
	}
	pgrp, _ = strconv.Atoi(f[2])
	fg, _ = strconv.Atoi(f[5])
	return pgrp, fg
}

// Ctrl-Z stops the app, and tender with it, so that the shell above gets its job back as
// stopped; fg continues both, the app with the terminal, and all ends as it would have (as with
// dumb-init; tender waited for the stopped app forever, and the shell for tender).
func TestCtrlZStopsTenderWithTheApp(t *testing.T) {
	o := startOnTerminal(t, []string{"sh", "-m", "-c"}, bin.tender+` -- sh -c 'echo app-started; sleep 0.5; echo app-done'
		echo stopped=$?; fg; echo rc=$?`)
	o.waitOutput(t, "app-started")
	if _, err := o.ptmx.Write([]byte{0x1a}); err != nil { // Ctrl-Z
		t.Fatal(err)
	}
	o.waitOutput(t, "stopped=147") // 128 + SIGSTOP, which tender stops itself with
	o.wait(t, 10*time.Second)
	if out := o.output(); !strings.Contains(out, "app-done") || !strings.Contains(out, "rc=0") {
		t.Errorf("after fg, the app did not end well:\n%s", out)
	}
}
