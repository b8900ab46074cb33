// Package reaper is tender's PID-1 core: the one owner of wait4(-1), signal forwarding, the
// child subreaper and ending every process left when the main child is gone.
//
// No other code in tender waits for a process. Whoever starts a child does so through
// Reaper.Start, which holds the reaper's lock across the fork so that the child's exit cannot
// be collected before someone is listening for it.
package reaper

import (
	"errors"
	"strconv"
	"sync"

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
// It waits in a blocking wait4(-1) on a thread of its own rather than on SIGCHLD: an exit is
// seen as soon as it happens, and tender needs no signal handler for it.
type Reaper struct {
	log hclog.Logger

	mu       sync.Mutex
	watchers map[int]watcher
	children bool // a child may be alive: set by Start, cleared when wait4 says ECHILD
	// gone is closed and replaced whenever wait4 finds no child left, so that EndAll can
	// sleep until then.
	gone    chan struct{}
	started chan struct{} // wakes the waiting thread when a first child appears
}

// watcher is who waits for a child's exit, and whether for its stops too.
type watcher struct {
	exits chan<- Exit
	stops bool
}

// New makes a Reaper and starts its waiting thread.
//
// It also sets SIGCHLD back to SIG_DFL, over the handler the Go runtime installs for every
// signal: the kernel then drops SIGCHLD without waking any thread of tender's, where the
// runtime's handler would wake one for every exit (a storm of wake-ups when orphans die by the
// thousand) only to ignore the signal. Zombies stay for wait4: only SIG_IGN would make the
// kernel reap children itself and lose their exit statuses.
func New(log hclog.Logger) *Reaper {
	if err := SetDefault(unix.SIGCHLD); err != nil {
		log.Debug("cannot set SIGCHLD to its default", "error", err)
	}
	r := &Reaper{
		log:      log,
		watchers: make(map[int]watcher),
		gone:     make(chan struct{}),
		started:  make(chan struct{}, 1),
	}
	go r.wait()
	return r
}

// Start runs fork, which must start exactly one child and return its pid, and sends that
// child's Exit to exits when it ends. The reaper's lock is held across the fork so that the
// child cannot be reaped before it is watched. exits should be buffered.
func (r *Reaper) Start(fork func() (int, error), exits chan<- Exit) (int, error) {
	return r.start(fork, watcher{exits: exits})
}

// StartWithStops is Start, and also sends each stop of the child (an Exit whose Status is
// Stopped: SIGTSTP from a terminal, say) to exits; the exit still comes last.
func (r *Reaper) StartWithStops(fork func() (int, error), exits chan<- Exit) (int, error) {
	return r.start(fork, watcher{exits: exits, stops: true})
}

func (r *Reaper) start(fork func() (int, error), w watcher) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := fork()
	if err != nil {
		return 0, err
	}
	r.watchers[pid] = w
	if !r.children {
		r.children = true
		select {
		case r.started <- struct{}{}:
		default:
		}
	}
	return pid, nil
}

// wait is the one owner of wait4: it reaps every child, adopted orphans included, and hands
// each exit (and stop, to those who asked) to whoever watches that pid. After a blocking
// wait4 it collects what else has exited without blocking: orphans often die in bursts, and a
// blocking system call costs the Go scheduler a hand-off each time.
func (r *Reaper) wait() {
	flags := 0
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, flags|unix.WUNTRACED, nil)
		if pid == 0 && err == nil { // WNOHANG: children left, none exited
			flags = 0
			continue
		}
		flags = unix.WNOHANG
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			flags = 0
			// Orphans are re-parented to tender before their parent becomes reapable, so no
			// child means no descendant at all, and only Start can make a new one. Start may
			// have forked since wait4 returned: confirm under its lock before sleeping.
			r.mu.Lock()
			none := !hasChildren()
			if none {
				r.noChildrenLocked()
			}
			r.mu.Unlock()
			if none {
				<-r.started
			}
			continue
		case err != nil:
			r.log.Error("wait4 failed", "error", err)
			flags = 0
			continue
		}
		r.dispatch(pid, ws)
	}
}

func (r *Reaper) dispatch(pid int, ws unix.WaitStatus) {
	exit := Exit{Pid: pid, Status: ws}
	r.mu.Lock()
	w, ok := r.watchers[pid]
	if ws.Stopped() {
		r.mu.Unlock()
		if ok && w.stops {
			w.exits <- exit
		}
		return
	}
	delete(r.watchers, pid)
	r.mu.Unlock()
	if ok {
		w.exits <- exit
	} else if r.log.IsTrace() {
		r.log.Trace("reaped", "pid", pid, "status", exit.String())
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
