package reaper

import (
	"errors"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"

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
// package early's init.
// Elsewhere os/signal catches the urgent ones first, the rest once the app runs (CatchRest),
// and the four above are not caught.
type Signals struct {
	c     chan os.Signal
	later []syscall.Signal // for CatchRest
}

// CatchSignals catches every signal tender forwards but those CatchRest catches. It is called
// once in a process: its relay has one reader.
func CatchSignals() *Signals {
	s := &Signals{c: make(chan os.Signal, 128)}
	s.later = catch(sigrelay.Forwarded(), s.c)
	return s
}

// C delivers the signals caught.
func (s *Signals) C() <-chan os.Signal { return s.c }

// CatchRest catches the signals CatchSignals left for later, if any. Until then those are
// dropped.
func (s *Signals) CatchRest() { notify(s.c, s.later) }

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

// notify catches sigs with os/signal.
func notify(c chan<- os.Signal, sigs []syscall.Signal) {
	if len(sigs) == 0 {
		return
	}
	list := make([]os.Signal, len(sigs))
	for i, sig := range sigs {
		list[i] = sig
	}
	signal.Notify(c, list...)
}

// Forwarder passes signals on to a child, as tini and dumb-init do.
type Forwarder struct {
	// ToGroup sends to the child's process group (which the child leads) rather than the
	// child alone, so that a shell's pipeline gets the signal too.
	ToGroup bool
	// Rewrite maps a signal to another before it is sent; to 0 drops it.
	Rewrite map[syscall.Signal]syscall.Signal
	Log     hclog.Logger
}

// Forward sends sig, rewritten, to pid (or its group) and returns what was sent (0 when the
// rewrite dropped it).
func (f Forwarder) Forward(sig syscall.Signal, pid int) syscall.Signal {
	if to, ok := f.Rewrite[sig]; ok {
		if to == 0 {
			f.Log.Debug("dropping signal", "signal", SignalName(sig))
			return 0
		}
		f.Log.Debug("rewriting signal", "from", SignalName(sig), "to", SignalName(to))
		sig = to
	}
	if err := Signal(pid, sig, f.ToGroup); err != nil {
		f.Log.Debug("cannot forward signal", "signal", SignalName(sig), "pid", pid, "error", err)
	} else {
		f.Log.Trace("forwarded signal", "signal", SignalName(sig), "pid", pid)
	}
	return sig
}

// Signal sends sig to pid's process group when group is true, falling back to pid alone when
// the group is gone (the child may have moved to another group), or to pid alone otherwise.
func Signal(pid int, sig syscall.Signal, group bool) error {
	if group {
		err := unix.Kill(-pid, sig)
		if !errors.Is(err, unix.ESRCH) {
			return err
		}
	}
	return unix.Kill(pid, sig)
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
