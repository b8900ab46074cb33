// Package reaper is tender's PID-1 core: the one owner of wait4(-1), signal forwarding, the
// child subreaper and ending every process left when the main child is gone.
//
// No other code in tender waits for a process. Whoever starts a child does so through
// Reaper.Start, so that the child's exit goes to whoever watches it and never to anyone else,
// and signals a child through Reaper.Signal, so that a pid that was reaped (and may be another
// process's by now) is never signalled.
package reaper

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// Exit is how a child ended.
type Exit struct {
	Pid    int
	Status unix.WaitStatus
}

// Code is the exit status a shell would report: the exit code, or 128+N when signal N
// killed the process.
func (e Exit) Code() int {
	if e.Status.Signaled() {
		return 128 + int(e.Status.Signal())
	}
	return e.Status.ExitStatus()
}

// String describes the exit for logs: "exit status 3" or "killed by SIGKILL".
func (e Exit) String() string {
	if e.Status.Signaled() {
		s := "killed by " + SignalName(e.Status.Signal())
		if e.Status.CoreDump() {
			s += " (core dumped)"
		}
		return s
	}
	return "exit status " + strconv.Itoa(e.Status.ExitStatus())
}

// Reaper collects the exit status of every child, started by tender or adopted, and hands the
// ones somebody asked for to that somebody.
//
// It waits in a blocking waitid on a thread of its own rather than on SIGCHLD: an exit is seen
// as soon as it happens, and tender needs no signal handler for it while it has children. It
// learns which child exited without reaping it (WNOWAIT), then reaps that pid and finds its
// watcher under one lock: a zombie's pid cannot be given to a new process, so the status can
// only go to whoever started that very process.
type Reaper struct {
	log  hclog.Logger
	wake childWake

	mu       sync.Mutex
	born     *sync.Cond // broadcast whenever a birth ends
	watchers map[int]watcher
	births   map[*Birth]bool
	children bool // a child may be alive: set by Start, cleared when waitid says ECHILD
	// gone is closed and replaced whenever waitid finds no child left, so that EndAll can
	// sleep until then.
	gone    chan struct{}
	started chan struct{} // wakes the waiting thread when a first child appears
}

// watcher is who waits for a child's exit, and whether for its stops too.
type watcher struct {
	exits chan<- Exit
	stops bool
}

// childWake tells the waiting thread that a child exited while it slept for want of children.
// A child can appear without Start: an orphan re-parented to tender, from a process that
// entered the container with setns (docker exec) and forked.
type childWake interface {
	// watchChildren turns the watch on or off, and reports whether it can.
	watchChildren(on bool) bool
	childExited() <-chan struct{}
}

// childPoll is how often the waiting thread looks for children while it has none, where no
// signal can wake it (architectures without tender's own handler).
const childPoll = 50 * time.Millisecond

// New makes a Reaper and starts its waiting thread. wake, when not nil, wakes that thread when
// an adopted child exits while tender has no other (Signals does); otherwise it looks every
// childPoll.
//
// New also sets SIGCHLD back to SIG_DFL, over the handler the Go runtime installs for every
// signal: the kernel then drops SIGCHLD without waking any thread of tender's, where the
// runtime's handler would wake one for every exit (a storm of wake-ups when orphans die by the
// thousand) only to ignore the signal. Zombies stay for waitid: only SIG_IGN would make the
// kernel reap children itself and lose their exit statuses.
func New(log hclog.Logger, wake *Signals) *Reaper {
	if err := SetDefault(unix.SIGCHLD); err != nil {
		log.Debug("cannot set SIGCHLD to its default", "error", err)
	}
	r := &Reaper{
		log:      log,
		watchers: make(map[int]watcher),
		births:   make(map[*Birth]bool),
		gone:     make(chan struct{}),
		started:  make(chan struct{}, 1),
	}
	if wake != nil {
		r.wake = wake
	}
	r.born = sync.NewCond(&r.mu)
	go r.wait()
	return r
}

// Birth is a child while its fork runs: the kernel writes the child's pid into it before the
// child runs (clone's CLONE_PARENT_SETTID), so that its pid is known, to the reaper and to
// Reaper.Signal, while the fork has not returned. A vfork returns only once the child has
// exec'd or exited, which may take for ever (a child stopped before its exec, an exec stuck on
// a dead NFS or FUSE path).
type Birth struct{ pid int32 }

// Pid is the child's pid, or 0 while the kernel has not made it.
func (b *Birth) Pid() int { return int(atomic.LoadInt32(&b.pid)) }

// Child is a child to start.
type Child struct {
	// Fork starts exactly one child and returns its pid. It gets the address where the kernel
	// must write the child's pid as it creates it, before the child runs (clone's parent_tid,
	// with CLONE_PARENT_SETTID): a child that exits before Fork returns and whose pid was not
	// written there is reaped as an orphan, its exit lost. (syscall.ForkExec writes none: fit
	// only for a child that outlives its fork.)
	Fork func(tid *int32) (int, error)
	// Exits gets the child's Exit when it ends (and its stops first, with Stops). It should
	// be buffered.
	Exits chan<- Exit
	// Stops also sends each stop of the child (an Exit whose Status is Stopped: SIGTSTP from a
	// terminal, say); the exit still comes last.
	Stops bool
	// Birth, when set, is where the child's pid can be read while Fork runs.
	Birth *Birth
}

// Start starts c and watches it. No lock is held while c.Fork runs: a fork that never returns
// blocks nothing but its caller.
func (r *Reaper) Start(c Child) (int, error) {
	b := c.Birth
	if b == nil {
		b = new(Birth)
	}
	r.mu.Lock()
	r.births[b] = true
	r.mu.Unlock()

	pid, err := c.Fork(&b.pid)

	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.births, b)
	r.born.Broadcast()
	if err != nil {
		return 0, err
	}
	r.watchers[pid] = watcher{exits: c.Exits, stops: c.Stops}
	if !r.children {
		r.children = true
		select {
		case r.started <- struct{}{}:
		default:
		}
	}
	return pid, nil
}

// Signal sends sig to pid, or to the process group pid leads when group is true (to pid alone
// when that group is gone: the child may have moved to another), if pid is a child tender
// started that is not reaped yet: alive, a zombie, or still in its fork. It is sent under the
// lock under which the waiting thread reaps, so pid cannot be another process's by then; a
// child already reaped is ESRCH.
func (r *Reaper) Signal(pid int, sig syscall.Signal, group bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if pid <= 0 || !r.ownsLocked(pid) {
		return unix.ESRCH
	}
	return signalPid(pid, sig, group)
}

// ownsLocked reports whether pid is a child that tender started or is starting, not reaped.
func (r *Reaper) ownsLocked(pid int) bool {
	if _, ok := r.watchers[pid]; ok {
		return true
	}
	return r.bornLocked(pid)
}

// bornLocked reports whether pid is a child whose fork has not returned yet. A birth whose pid
// is still 0 has made no child yet: the kernel writes the pid before the child runs.
func (r *Reaper) bornLocked(pid int) bool {
	for b := range r.births {
		if b.Pid() == pid {
			return true
		}
	}
	return false
}

// signalPid sends sig to pid's process group when group is true, falling back to pid alone when
// the group is gone, or to pid alone otherwise.
func signalPid(pid int, sig syscall.Signal, group bool) error {
	if group {
		err := unix.Kill(-pid, sig)
		if !errors.Is(err, unix.ESRCH) {
			return err
		}
	}
	return unix.Kill(pid, sig)
}

// wait is the one owner of waitid and wait4: it reaps every child, adopted orphans included,
// and hands each exit (and stop, to those who asked) to whoever watches that pid. After a
// blocking waitid it collects what else has exited without blocking: orphans often die in
// bursts, and a blocking system call costs the Go scheduler a hand-off each time.
func (r *Reaper) wait() {
	flags := 0
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WSTOPPED|unix.WNOWAIT|flags, nil)
		ev := childEvent(&info)
		switch {
		case err == nil && ev.pid == 0: // WNOHANG: children left, none exited
			flags = 0
		case err == nil && ev.stopped():
			r.takeStop(ev)
			flags = unix.WNOHANG
		case err == nil:
			r.reap(ev.pid)
			flags = unix.WNOHANG
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.ECHILD):
			flags = 0
			r.sleepWithoutChildren()
		default:
			r.log.Error("waitid failed", "error", err)
			flags = 0
			time.Sleep(childPoll) // not a busy loop, whatever the kernel says
		}
	}
}

// reap reaps pid, which has exited, and hands its exit to its watcher. A child whose fork has
// not returned yet has no watcher so far: its exit waits for Start to register it, which
// follows at once, since a vfork returns when its child exits.
func (r *Reaper) reap(pid int) {
	r.mu.Lock()
	for {
		if _, ok := r.watchers[pid]; ok || !r.bornLocked(pid) {
			break
		}
		r.born.Wait()
	}
	var ws unix.WaitStatus
	got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	if got != pid || err != nil {
		r.mu.Unlock()
		return
	}
	w, ok := r.watchers[pid]
	delete(r.watchers, pid)
	r.mu.Unlock()

	exit := Exit{Pid: pid, Status: ws}
	if ok {
		w.exits <- exit
	} else if r.log.IsTrace() {
		r.log.Trace("reaped", "pid", pid, "status", exit.String())
	}
}

// takeStop takes the report of a child's stop, and hands it to a watcher that asked for stops.
// It never waits for a birth: a child stopped before its exec keeps its vfork from returning.
// Only the stop is taken (WSTOPPED without WEXITED), never an exit that may have followed it.
func (r *Reaper) takeStop(ev event) {
	r.mu.Lock()
	w, ok := r.watchers[ev.pid]
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, ev.pid, &info, unix.WSTOPPED|unix.WNOHANG, nil)
	r.mu.Unlock()
	if err == nil && childEvent(&info).pid == ev.pid && ok && w.stops {
		w.exits <- Exit{Pid: ev.pid, Status: unix.WaitStatus(ev.status<<8 | 0x7f)}
	}
}

// sleepWithoutChildren waits for a child to appear: Start's, or an orphan adopted since. An
// adopted process gives no sign until it exits, so tender watches SIGCHLD meanwhile (and only
// meanwhile: with children, the blocking waitid sees every exit without a signal).
func (r *Reaper) sleepWithoutChildren() {
	var exited <-chan struct{}
	if r.wake != nil && r.wake.watchChildren(true) {
		defer r.wake.watchChildren(false)
		exited = r.wake.childExited()
	}
	// Start may have forked, or an orphan exited before the watch, since waitid returned:
	// look again, now that either would wake this thread.
	r.mu.Lock()
	none := !hasChildren()
	if none && len(r.births) == 0 {
		r.noChildrenLocked()
	}
	r.mu.Unlock()
	if !none {
		return
	}
	var poll <-chan time.Time
	if exited == nil {
		t := time.NewTimer(childPoll)
		defer t.Stop()
		poll = t.C
	}
	select {
	case <-r.started:
	case <-exited:
	case <-poll:
	}
}

func (r *Reaper) noChildrenLocked() {
	if r.children {
		r.children = false
		close(r.gone)
		r.gone = make(chan struct{})
	}
}

// Gone returns a channel that is closed once no child is left; already closed when there is
// none now.
func (r *Reaper) Gone() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.children {
		closed := make(chan struct{})
		close(closed)
		return closed
	}
	return r.gone
}

// Alive reports whether any child is left, alive or not yet reaped, without waiting.
func (r *Reaper) Alive() bool { return hasChildren() }

// hasChildren asks the kernel whether this process has any child, without reaping one
// (WNOWAIT): waitid fails with ECHILD only when there is none.
func hasChildren() bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return !errors.Is(err, unix.ECHILD)
}

// event is what waitid says happened to a child.
type event struct {
	pid, code, status int
}

// The si_code of a child's stop (CLD_STOPPED, CLD_TRAPPED under ptrace).
const (
	cldTrapped = 4
	cldStopped = 5
)

func (e event) stopped() bool { return e.code == cldStopped || e.code == cldTrapped }

// childEvent reads a siginfo that waitid filled: si_code after two ints (signo, errno), then,
// at the union's alignment (a pointer's), si_pid, si_uid and si_status. A pid of 0 means that
// waitid found nothing (WNOHANG).
func childEvent(info *unix.Siginfo) event {
	base := unsafe.Pointer(info)
	off := 3 * unsafe.Sizeof(int32(0))
	if a := unsafe.Alignof(uintptr(0)); off%a != 0 {
		off += a - off%a
	}
	field := func(at uintptr) int { return int(*(*int32)(unsafe.Add(base, at))) }
	return event{pid: field(off), code: int(info.Code), status: field(off + 8)}
}
