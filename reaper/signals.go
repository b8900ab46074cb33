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
)

// urgent are the signals that, left to the Go runtime, would kill tender (TERM, INT, HUP), make
// it dump its goroutines and exit (QUIT) or stop it (TSTP, TTIN, TTOU), and those that users
// most often send to an app through its init (USR1, USR2, WINCH). They are caught before
// anything is started.
var urgent = []os.Signal{
	unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT,
	unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH,
}

// Signals is tender's catch of every signal it can catch, except SIGCHLD (the reaper waits in
// wait4 instead) and SIGURG (the Go runtime's preemption signal, nobody else's business).
//
// Catching keeps tender alive and running through signals meant for the apps, and lets it pass
// them on. The Go runtime enables each signal with a round trip to a thread of its own, 40 to
// 55µs apiece on a small VM (BenchmarkCatchSignals): 0.4 to 0.55ms for the urgent ones, 2ms of
// CPU for all. So CatchSignals catches the urgent ones, before any app starts, and CatchRest
// the others (ALRM, PWR, the real-time signals...) once the app runs, so as not to take CPU
// from its start. Until then those are dropped.
type Signals struct{ c chan os.Signal }

// CatchSignals catches the urgent signals.
func CatchSignals() *Signals {
	s := &Signals{c: make(chan os.Signal, 128)}
	signal.Notify(s.c, urgent...)
	return s
}

// C delivers the signals caught.
func (s *Signals) C() <-chan os.Signal { return s.c }

// CatchRest catches the other signals too.
func (s *Signals) CatchRest() { signal.Notify(s.c, rest()...) }

func rest() []os.Signal {
	var sigs []os.Signal
	for sig := syscall.Signal(1); sig <= 64; sig++ {
		switch sig {
		case unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGURG:
			continue
		}
		if !slices.Contains(urgent, os.Signal(sig)) {
			sigs = append(sigs, sig)
		}
	}
	return sigs
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
