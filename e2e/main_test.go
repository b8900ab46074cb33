// Package e2e runs the real tender binary as PID 1 (in a PID namespace made by unshare, and in
// OCI containers run by runc) and checks the real processes through /proc.
package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Paths of the binaries built for the tests: static, so that they also run in an empty rootfs.
var bin struct {
	dir     string
	tender  string
	testapp string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tender-e2e-")
	if err != nil {
		panic(err)
	}
	bin.dir = dir
	bin.tender = filepath.Join(dir, "tender")
	bin.testapp = filepath.Join(dir, "testapp")
	for out, pkg := range map[string]string{bin.tender: "../init", bin.testapp: "../internal/testapp"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, b)
			os.Exit(1)
		}
	}
	// The build dir must be reachable by non-root users in the tests that switch users.
	_ = os.Chmod(dir, 0o755)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needRoot skips a test that needs root; CI runs as root, so there nothing skips.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (PID namespaces, runc)")
	}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of exec and a reading test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Run is tender running below a process the test started (unshare, runc).
type Run struct {
	t       *testing.T
	cmd     *exec.Cmd
	Stdout  *syncBuffer
	Stderr  *syncBuffer
	done    chan struct{}
	code    int
	started time.Time
	// depth is how far below cmd tender is: 1 when unshare's child is tender, 2 when a
	// shell is PID 1 and tender its child.
	depth int
}

// Mode says where tender runs in its PID namespace.
type Mode int

const (
	AsPID1     Mode = iota // tender is PID 1
	BelowShell             // a shell is PID 1 and tender is its child: tender is a subreaper
)

// startTender runs tender with args in a new PID namespace, as PID 1 or below a shell.
func startTender(t *testing.T, mode Mode, env []string, args ...string) *Run {
	t.Helper()
	return startTenderFrom(t, "", mode, env, args...)
}

// startTenderFrom is startTender from a parent prepared by the bash code setup (an OOM
// score, open fds, ...), which then execs unshare.
func startTenderFrom(t *testing.T, setup string, mode Mode, env []string, args ...string) *Run {
	t.Helper()
	needRoot(t)
	argv := []string{"--pid", "--fork", "--mount-proc", "--kill-child"}
	depth := 1
	if mode == BelowShell {
		// The shell runs tender as a child (not exec: two commands) and passes its status on.
		argv = append(argv, "/bin/sh", "-c", `"$@"; exit $?`, "sh")
		depth = 2
	}
	argv = append(argv, bin.tender)
	argv = append(argv, args...)
	if setup == "" {
		return startCmd(t, exec.Command("unshare", argv...), env, depth)
	}
	wrapped := append([]string{"-c", setup + "\nexec \"$@\"", "bash", "unshare"}, argv...)
	return startCmd(t, exec.Command("bash", wrapped...), env, depth)
}

// oomScore reads the oom_score_adj of a process.
func oomScore(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid))
	if err != nil {
		t.Fatalf("reading the OOM score of %d: %v", pid, err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func startCmd(t *testing.T, cmd *exec.Cmd, env []string, depth int) *Run {
	t.Helper()
	r := &Run{t: t, cmd: cmd, Stdout: &syncBuffer{}, Stderr: &syncBuffer{}, done: make(chan struct{}), depth: depth}
	cmd.Env = append(cleanEnv(), env...)
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "TENDER_CONTROL=") }) {
		// Parallel tests share /run: each asks for a control socket of its own, or none.
		cmd.Env = append(cmd.Env, "TENDER_CONTROL=off")
	}
	cmd.Stdout, cmd.Stderr = r.Stdout, r.Stderr
	r.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", cmd.Args, err)
	}
	go func() {
		err := cmd.Wait()
		r.code = exitCode(cmd.ProcessState, err)
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("tender stdout:\n%s\ntender stderr:\n%s", r.Stdout, r.Stderr)
		}
	})
	return r
}

// cleanEnv is the test's environment without TENDER_* variables a developer may have set.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TENDER_") {
			env = append(env, kv)
		}
	}
	return env
}

func exitCode(ps *os.ProcessState, err error) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// Wait waits for the run to end and returns its exit status.
func (r *Run) Wait(timeout time.Duration) int {
	r.t.Helper()
	select {
	case <-r.done:
		return r.code
	case <-time.After(timeout):
		r.t.Fatalf("tender did not exit within %v", timeout)
		return -1
	}
}

// Exited reports whether the run has ended.
func (r *Run) Exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// TenderPid is tender's pid as the host sees it.
func (r *Run) TenderPid() int {
	r.t.Helper()
	var pid int
	eventually(r.t, 5*time.Second, "tender to start", func() bool {
		level := []int{r.cmd.Process.Pid}
		for i := 0; i < r.depth; i++ {
			var next []int
			for _, p := range level {
				next = append(next, childrenOf(p)...)
			}
			level = next
		}
		for _, p := range level {
			if args := strings.Fields(readCmdline(p)); len(args) > 0 && filepath.Base(args[0]) == "tender" {
				pid = p
				return true
			}
		}
		return false
	})
	return pid
}

// Signal sends sig to tender.
func (r *Run) Signal(sig syscall.Signal) {
	r.t.Helper()
	if err := syscall.Kill(r.TenderPid(), sig); err != nil {
		r.t.Fatalf("signalling tender: %v", err)
	}
}

// logged waits for tender's stderr to say substr: the log reaches the test through a pipe,
// a moment after tender wrote it.
func (r *Run) logged(substr string) bool {
	return poll(5*time.Second, 10*time.Millisecond, func() bool { return strings.Contains(r.Stderr.String(), substr) })
}

// eventually polls cond every 10ms until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(timeout, 10*time.Millisecond, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// poll tries cond every interval until it holds or timeout has passed, and says whether it
// held.
func poll(timeout, every time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(every) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// waitFile waits for path to exist and returns its contents.
func waitFile(t *testing.T, path string, timeout time.Duration) string {
	t.Helper()
	var b []byte
	eventually(t, timeout, path, func() bool {
		var err error
		b, err = os.ReadFile(path)
		return err == nil
	})
	return string(b)
}

// Proc is a process as /proc shows it.
type Proc struct {
	Pid, PPid, Pgid int
	State           byte
	Cmdline         string
}

// procs lists every process on the host.
func procs() []Proc {
	entries, _ := os.ReadDir("/proc")
	var out []Proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

func readProc(pid int) (Proc, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Proc{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 {
		return Proc{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	pgid, _ := strconv.Atoi(f[2])
	return Proc{Pid: pid, PPid: ppid, Pgid: pgid, State: f[0][0], Cmdline: readCmdline(pid)}, true
}

func readCmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

func childrenOf(pid int) []int {
	var kids []int
	for _, p := range procs() {
		if p.PPid == pid {
			kids = append(kids, p.Pid)
		}
	}
	return kids
}

// descendants lists the processes below pid.
func descendants(pid int) []Proc {
	all := procs()
	var out []Proc
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range all {
			if c.PPid == p {
				out = append(out, c)
				queue = append(queue, c.Pid)
			}
		}
	}
	return out
}

// findBelow waits for a process below root whose command line contains substr.
func findBelow(t *testing.T, root int, substr string) Proc {
	t.Helper()
	var found Proc
	eventually(t, 10*time.Second, "a process running "+substr, func() bool {
		for _, p := range descendants(root) {
			// A child between its fork and its exec still runs tender, with tender's cmdline.
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.Pid)); exe == bin.tender {
				continue
			}
			if strings.Contains(p.Cmdline, substr) {
				found = p
				return true
			}
		}
		return false
	})
	return found
}

// procStatus reads /proc/<pid>/status as a map.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading status of %d: %v", pid, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// openFds lists the fds of pid, from /proc/<pid>/fd.
func openFds(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("reading fds of %d: %v", pid, err)
	}
	var fds []int
	for _, e := range entries {
		n, _ := strconv.Atoi(e.Name())
		fds = append(fds, n)
	}
	return fds
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// freePort finds a free loopback port for a test's front socket.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
