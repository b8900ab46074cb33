// Command testapp is the app that tender's end-to-end tests run under tender. It is one static
// binary with a subcommand per behaviour, so that it also runs in a runc bundle with no
// distribution at all.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

var commands = map[string]func(args []string){
	"exit":          cmdExit,
	"killself":      cmdKillSelf,
	"signals":       cmdSignals,
	"info":          cmdInfo,
	"sleep":         cmdSleep,
	"orphans":       cmdOrphans,
	"leave":         cmdLeave,
	"ignore-term":   cmdIgnoreTerm,
	"pgroup":        cmdPgroup,
	"alloc":         cmdAlloc,
	"spam-children": cmdSpamChildren,
	"sigwrap":       cmdSigwrap,
	"serve":         cmdServe,
	"note":          cmdNote,
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: testapp COMMAND [ARG...]; commands:", keys())
		os.Exit(2)
	}
	commands[os.Args[1]](os.Args[2:])
}

func keys() []string {
	var k []string
	for name := range commands {
		k = append(k, name)
	}
	return k
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		os.Exit(99)
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	must(err)
	return n
}

// writeFile writes atomically, so that a test polling for the file never reads half of it.
func writeFile(path, content string) {
	must(os.WriteFile(path+".tmp", []byte(content), 0o644))
	must(os.Rename(path+".tmp", path))
}

// exit N: exit with status N.
func cmdExit(args []string) { os.Exit(atoi(args[0])) }

// killself SIG: die of signal SIG. The Go runtime drops some signals nobody asked for
// (SIGUSR1), so the disposition is set to the default first, behind the runtime's back.
func cmdKillSelf(args []string) {
	sig := syscall.Signal(atoi(args[0]))
	var dfl [4]uintptr // struct sigaction with sa_handler = SIG_DFL
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	must(unix.Kill(os.Getpid(), sig))
	time.Sleep(10 * time.Second)
	os.Exit(98)
}

// signals FILE [STOP]: append every signal received to FILE, one number a line, after a first
// line "ready"; exit 0 after receiving signal STOP (default 15).
func cmdSignals(args []string) {
	stop := syscall.SIGTERM
	if len(args) > 1 {
		stop = syscall.Signal(atoi(args[1]))
	}
	c := make(chan os.Signal, 64)
	signal.Notify(c)
	f, err := os.OpenFile(args[0], os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must(err)
	fmt.Fprintln(f, "ready", os.Getpid())
	for s := range c {
		sig := s.(syscall.Signal)
		if sig == syscall.SIGURG || sig == syscall.SIGCHLD {
			continue
		}
		fmt.Fprintln(f, int(sig))
		if sig == stop {
			f.Close()
			os.Exit(0)
		}
	}
}

// Note is what `testapp note` appends to its file: who it is in the pool, and its arguments.
type Note struct {
	Event string   `json:"event"` // start, or term when it got SIGTERM
	At    int64    `json:"at"`    // Unix microseconds
	Pid   int      `json:"pid"`
	Type  string   `json:"type"` // TENDER_PROCESS_TYPE
	ID    string   `json:"id"`   // TENDER_WORKER_ID
	Port  string   `json:"port"` // PORT
	Args  []string `json:"args"` // its arguments after FILE
}

// note [-exit] FILE [ARG...]: append a start Note to FILE, then wait for SIGTERM, append a term
// Note and exit 0; with -exit, exit 0 at once. A process of a Procfile type that serves no
// port, or a release phase.
func cmdNote(args []string) {
	once := len(args) > 0 && args[0] == "-exit"
	if once {
		args = args[1:]
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	write := func(event string) {
		n := Note{Event: event, At: time.Now().UnixMicro(), Pid: os.Getpid(), Type: os.Getenv("TENDER_PROCESS_TYPE"),
			ID: os.Getenv("TENDER_WORKER_ID"), Port: os.Getenv("PORT"), Args: args[1:]}
		b, err := json.Marshal(n)
		must(err)
		appendLine(args[0], string(b))
	}
	write("start")
	if once {
		return
	}
	<-c
	write("term")
}

// Info is what `testapp info` reports about the process it runs in.
type Info struct {
	Pid         int               `json:"pid"`
	PPid        int               `json:"ppid"`
	Pgid        int               `json:"pgid"`
	Fds         []int             `json:"fds"`
	Status      map[string]string `json:"status"` // from /proc/self/status
	OOMScoreAdj int               `json:"oom_score_adj"`
	NofileSoft  uint64            `json:"nofile_soft"`
	NofileHard  uint64            `json:"nofile_hard"`
	Env         []string          `json:"env"`
}

// info FILE: write an Info of this process to FILE, then sleep until killed.
func cmdInfo(args []string) {
	info := Info{Pid: os.Getpid(), PPid: os.Getppid(), Pgid: unix.Getpgrp(), Status: map[string]string{}, Env: os.Environ()}
	// Read the fds before the Go runtime or this code opens anything more than it must: the
	// directory fd itself is left out by comparing with the fd we read through.
	d, err := os.Open("/proc/self/fd")
	must(err)
	names, _ := d.Readdirnames(-1)
	self := int(d.Fd())
	for _, n := range names {
		fd, _ := strconv.Atoi(n)
		if fd == self {
			continue
		}
		// The Go runtime keeps fds of its own open, all close-on-exec; an fd inherited from
		// the parent has no close-on-exec flag, since one with it would not have survived.
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			info.Fds = append(info.Fds, fd)
		}
	}
	d.Close()
	status, err := os.ReadFile("/proc/self/status")
	must(err)
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			info.Status[k] = strings.TrimSpace(v)
		}
	}
	oom, err := os.ReadFile("/proc/self/oom_score_adj")
	must(err)
	info.OOMScoreAdj = atoi(strings.TrimSpace(string(oom)))
	var lim unix.Rlimit
	must(unix.Getrlimit(unix.RLIMIT_NOFILE, &lim))
	info.NofileSoft, info.NofileHard = lim.Cur, lim.Max
	b, _ := json.Marshal(info)
	writeFile(args[0], string(b))
	if len(args) > 1 && args[1] == "exit" {
		return
	}
	time.Sleep(time.Hour)
}

// sleep SECONDS: sleep (fractions allowed).
func cmdSleep(args []string) {
	d, err := strconv.ParseFloat(args[0], 64)
	must(err)
	time.Sleep(time.Duration(d * float64(time.Second)))
}

// orphans N FILE [exit]: make N orphans by double fork: a child forks a grandchild and exits
// at once, so the grandchild is re-parented to the reaper (tender) and must be reaped there.
// Half the grandchildren exit at once, half after 50ms, so that some become orphans alive and
// some already dead. Then write "done" to FILE and sleep until SIGTERM, or exit with "exit".
func cmdOrphans(args []string) {
	n := atoi(args[0])
	for i := 0; i < n; i++ {
		delay := uintptr(0)
		if i%2 == 1 {
			delay = 50
		}
		pid := doubleFork(delay)
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
				break
			}
		}
	}
	writeFile(args[1], "done")
	if len(args) > 2 && args[2] == "exit" {
		return
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	<-c
}

// doubleFork forks a child that forks a grandchild and exits. The grandchild sleeps delay ms
// and exits. Between fork and exit the children run nothing but raw system calls, which is
// what makes forking a Go program without exec safe.
//
//go:nosplit
func doubleFork(delayMs uintptr) int {
	pid, _, _ := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if pid != 0 {
		return int(pid)
	}
	gpid, _, _ := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if gpid == 0 && delayMs > 0 {
		ts := unix.NsecToTimespec(int64(delayMs) * 1e6)
		unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
	}
	unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	return 0
}

// leave FILE CODE [GO]: start a background process that ignores SIGTERM (its pid goes to FILE),
// then exit with CODE, leaving it behind; with GO, only once the file GO exists.
func cmdLeave(args []string) {
	self, _ := os.Executable()
	cmd := exec.Command(self, "ignore-term", args[0])
	must(cmd.Start())
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(args[0]); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for len(args) > 2 {
		if _, err := os.Stat(args[2]); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	os.Exit(atoi(args[1]))
}

// ignore-term FILE: ignore SIGTERM, write our pid to FILE, sleep.
func cmdIgnoreTerm(args []string) {
	signal.Ignore(syscall.SIGTERM)
	writeFile(args[0], strconv.Itoa(os.Getpid()))
	time.Sleep(time.Hour)
}

// pgroup FILE: like tini's process group test, ignore SIGHUP and wait for a child that does
// not; write both pids to FILE. Only a signal to the whole group ends the child, and then this
// process exits with 128+N as a shell would.
func cmdPgroup(args []string) {
	self, _ := os.Executable()
	cmd := exec.Command(self, "sleep", "1000")
	must(cmd.Start()) // before Ignore: an ignored signal would stay ignored in the child
	signal.Ignore(syscall.SIGHUP)
	writeFile(args[0], fmt.Sprintf("%d %d", os.Getpid(), cmd.Process.Pid))
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			os.Exit(128 + int(ws.Signal()))
		}
	}
	os.Exit(0)
}

// hoard keeps what alloc and serve -leak allocate alive.
var hoard [][]byte

// alloc MiB_PER_STEP: allocate and touch memory without bound.
func cmdAlloc(args []string) { grow(atoi(args[0]), 10*time.Millisecond) }

// grow keeps mib more MiB, touched, every interval, for ever.
func grow(mib int, every time.Duration) {
	for {
		b := make([]byte, mib<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		hoard = append(hoard, b)
		time.Sleep(every)
	}
}

// appendLine adds line to the file at path in one write with O_APPEND, so that processes
// writing at once never mix their lines.
func appendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must(err)
	_, err = f.WriteString(line + "\n")
	must(err)
	must(f.Close())
}

// spam-children N: start N children that exit at once, one after the other, then exit.
func cmdSpamChildren(args []string) {
	n := atoi(args[0])
	self, _ := os.Executable()
	for i := 0; i < n; i++ {
		must(exec.Command(self, "exit", "0").Run())
	}
}

// sigwrap BLOCK IGNORE COMMAND [ARG...]: exec COMMAND with the signals of BLOCK blocked and
// those of IGNORE ignored (comma-separated numbers, or - for none), as tini's sigconf test
// does, to show that tender does not pass such a state on to its apps.
func cmdSigwrap(args []string) {
	runtime.LockOSThread() // the mask belongs to the thread that calls execve
	var block unix.Sigset_t
	for _, s := range sigList(args[0]) {
		block.Val[(s-1)/64] |= 1 << ((s - 1) % 64)
	}
	for _, s := range sigList(args[1]) {
		var ign [4]uintptr // struct sigaction with sa_handler = SIG_IGN
		ign[0] = 1
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(s), uintptr(unsafe.Pointer(&ign)), 0, 8, 0, 0)
	}
	must(unix.PthreadSigmask(unix.SIG_BLOCK, &block, nil))
	path, err := exec.LookPath(args[2])
	must(err)
	must(unix.Exec(path, args[2:], os.Environ()))
}

func sigList(s string) []int {
	var out []int
	if s == "-" {
		return out
	}
	for _, f := range strings.Split(s, ",") {
		out = append(out, atoi(f))
	}
	return out
}
