package reaper

import (
	"errors"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/internal/sigrelay"
)

// Signals is tender's catch of every signal it forwards (sigrelay.Forwarded: each catchable
// signal but SIGCHLD, SIGURG and 33).
//
// Catching keeps tender alive and running through signals meant for the apps, and lets it pass
// them on. os/signal would enable each signal with a round trip to a runtime thread of its own,
// 35 to 55µs apiece on a small VM, 2 to 3ms for all of them: longer than the rest of tender's
// start-up. It cannot catch some at all (SIGSYS, SIGPROF, 32, and 34 = glibc's SIGRTMIN, which
// the runtime leaves at their default: they would kill tender). So where tender has a handler of
// its own (package sigrelay), that handler catches them all at once, in tender as early as
// package early's init, and no signal it counted is lost, however many arrive.
// Elsewhere os/signal catches the urgent ones first, the rest once the app runs (CatchRest),
// and the four above are not caught; there a signal that arrives while one of its kind is still
// waiting to be passed on is merged into it, as the kernel merges standard signals.
type Signals struct {
	c     chan os.Signal
	later []syscall.Signal // for CatchRest
	// children hears of SIGCHLD while the reaper watches for it (watchChildren).
	children chan struct{}
	// relayed: tender's own handler catches the signals (sigrelay), SIGCHLD too when asked.
	relayed bool
}

// CatchSignals catches every signal tender forwards but those CatchRest catches. It is called
// once in a process: its relay has one reader.
func CatchSignals() *Signals {
	s := &Signals{c: make(chan os.Signal, 128), children: make(chan struct{}, 1)}
	s.later = s.catch(sigrelay.Forwarded())
	return s
}

// C delivers the signals caught.
func (s *Signals) C() <-chan os.Signal { return s.c }

// CatchRest catches the signals CatchSignals left for later, if any. Until then those are
// dropped.
func (s *Signals) CatchRest() { notify(s.c, s.later) }

func (s *Signals) childExited() <-chan struct{} { return s.children }

// urgent are the signals that os/signal catches before any app starts where tender has no
// handler of its own: those that, left to the Go runtime, would kill tender (TERM, INT, HUP),
// make it dump its goroutines and exit (QUIT) or stop it (TSTP, TTIN, TTOU), and those that
// users most often send to an app through its init (USR1, USR2, WINCH).
var urgent = []syscall.Signal{
	unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT,
	unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH,
}

// catchWithRuntime catches the urgent signals of sigs with os/signal and returns the others.
func catchWithRuntime(sigs []syscall.Signal, c chan<- os.Signal) (later []syscall.Signal) {
	notify(c, urgent)
	for _, sig := range sigs {
		if !slices.Contains(urgent, sig) {
			later = append(later, sig)
		}
	}
	return later
}

// notify catches sigs with os/signal. os/signal drops a signal that finds its channel full:
// each signal has a channel of its own, of one, emptied into c by a goroutine, so that what is
// dropped is only a second signal of a kind whose first is still on its way.
func notify(c chan<- os.Signal, sigs []syscall.Signal) {
	for _, sig := range sigs {
		one := make(chan os.Signal, 1)
		signal.Notify(one, sig)
		go func() {
			for s := range one {
				c <- s
			}
		}()
	}
}

// Forwarder passes signals on to a child, as tini and dumb-init do.
type Forwarder struct {
	// Reaper signals the child, only while it is the child (see Reaper.Signal).
	Reaper *Reaper
	// ToGroup sends to the child's process group (which the child leads) rather than the
	// child alone, so that a shell's pipeline gets the signal too.
	ToGroup bool
	// Rewrite maps a signal to another before it is sent; to 0 drops it.
	Rewrite map[syscall.Signal]syscall.Signal
	Log     hclog.Logger

	// Real-time signals the child's queue refused (EAGAIN: its RLIMIT_SIGPENDING is full),
	// counted and said at most once a second.
	refused     int
	refusedSaid time.Time
}

// Forward sends sig, rewritten, to pid (or its group) and returns what was sent (0 when the
// rewrite dropped it).
func (f *Forwarder) Forward(sig syscall.Signal, pid int) syscall.Signal {
	if to, ok := f.Rewrite[sig]; ok {
		if to == 0 {
			f.Log.Debug("dropping signal", "signal", SignalName(sig))
			return 0
		}
		f.Log.Debug("rewriting signal", "from", SignalName(sig), "to", SignalName(to))
		sig = to
	}
	err := f.Reaper.Signal(pid, sig, f.ToGroup)
	switch {
	case err == nil:
		f.Log.Trace("forwarded signal", "signal", SignalName(sig), "pid", pid)
	case errors.Is(err, unix.EAGAIN):
		f.refused++
		if now := time.Now(); now.Sub(f.refusedSaid) >= time.Second {
			f.Log.Warn("the app's queue of real-time signals is full: signals not delivered", "count", f.refused, "last", SignalName(sig), "pid", pid)
			f.refused, f.refusedSaid = 0, now
		}
	default:
		f.Log.Debug("cannot forward signal", "signal", SignalName(sig), "pid", pid, "error", err)
	}
	return sig
}

// BecomeSubreaper makes orphaned descendants re-parent to this process instead of to the
// real PID 1, so that tender reaps and ends them even when it is not PID 1 itself.
func BecomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// SignalName names a signal for people: SIGTERM, SIGRTMIN+3, or "signal 33" for the numbers
// glibc keeps for itself.
func SignalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	if sig >= 34 && sig <= 64 {
		return "SIGRTMIN+" + strconv.Itoa(int(sig)-34)
	}
	return "signal " + strconv.Itoa(int(sig))
}
