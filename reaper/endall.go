package reaper

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// KillWait bounds the wait after SIGKILL: a process stuck in an uninterruptible sleep may never
// die, and tender must not wait for it forever.
const KillWait = 5 * time.Second

// Rescan is how often EndAll looks for processes that were forked after it sent SIGTERM.
const Rescan = 20 * time.Millisecond

// sayWaitingAfter is how long the processes left may take to end on SIGTERM before tender says
// which it waits for: most end at once, and a leftover that does not is what makes a `docker
// stop` take the whole grace.
const sayWaitingAfter = 250 * time.Millisecond

// EndAll ends every process left once the main child is gone: SIGTERM (and then SIGCONT to
// those that are stopped, as systemd does, so that they can act on the SIGTERM), then SIGKILL
// after grace, reaping them all. It says at info level which processes it waits for, once they
// have not ended at once, and which get SIGKILL. It returns at once when no child is left.
//
// As PID 1 "every process" is everything in the container, reached with kill(-1). Otherwise
// kill(-1) would reach every process of the user (of the whole machine for root), so tender
// signals only its own descendants, found through /proc and signalled through pidfds (see
// Proc.Signal); as a subreaper it is the parent of every orphan among them, so waiting for its
// own children waits for them all.
func (r *Reaper) EndAll(grace time.Duration) {
	if !r.Alive() {
		return
	}
	pid1 := os.Getpid() == 1
	termed := map[Proc]bool{}
	r.signalLeft(unix.SIGTERM, pid1, termed)

	if grace > 0 {
		deadline := time.NewTimer(grace)
		defer deadline.Stop()
		say := time.NewTimer(min(sayWaitingAfter, grace/2))
		defer say.Stop()
		tick := time.NewTicker(Rescan)
		defer tick.Stop()
	wait:
		for {
			select {
			case <-r.Gone():
				return
			case <-say.C:
				if left := r.left(pid1); left != "" {
					r.log.Info("waiting for the processes left to end on SIGTERM", "up_to", grace, "processes", left)
				}
			case <-tick.C:
				if !pid1 {
					// kill(-1) reaches processes forked later as well; a list from /proc does not.
					r.signalLeft(unix.SIGTERM, false, termed)
				}
			case <-deadline.C:
				break wait
			}
		}
	}

	if left := r.left(pid1); left != "" {
		r.log.Info("sending SIGKILL to the processes left", "after", grace, "processes", left)
	}
	stop := time.NewTimer(KillWait)
	defer stop.Stop()
	tick := time.NewTicker(Rescan)
	defer tick.Stop()
	for {
		r.signalLeft(unix.SIGKILL, pid1, nil)
		select {
		case <-r.Gone():
			return
		case <-tick.C:
		case <-stop.C:
			r.log.Warn("processes are still alive after SIGKILL; giving up on them", "waited", KillWait, "processes", r.left(pid1))
			return
		}
	}
}

// signalLeft sends sig to every process left: all of them as PID 1, otherwise the
// descendants not yet in done (which it updates when not nil). After SIGTERM, the stopped ones
// get SIGCONT, so that they act on it; a running process that handles SIGTERM sees SIGTERM
// alone, as it would from docker stop.
func (r *Reaper) signalLeft(sig syscall.Signal, pid1 bool, done map[Proc]bool) {
	if pid1 {
		if err := unix.Kill(-1, sig); err != nil && err != unix.ESRCH {
			r.log.Warn("cannot signal the processes left", "signal", SignalName(sig), "error", err)
		}
		if sig == unix.SIGTERM {
			r.continueStopped(0)
		}
		return
	}
	procs, err := Below(os.Getpid())
	if err != nil {
		r.log.Debug("cannot list descendants; signalling the children tender started", "error", err)
		for _, pid := range r.watched() {
			if done != nil {
				if done[Proc{Pid: pid}] {
					continue
				}
				done[Proc{Pid: pid}] = true
			}
			_ = unix.Kill(pid, sig)
			if sig == unix.SIGTERM {
				_ = unix.Kill(pid, unix.SIGCONT) // no /proc to tell the stopped ones
			}
		}
		return
	}
	for _, p := range procs {
		if done != nil {
			if done[p.Proc] {
				continue
			}
			done[p.Proc] = true
		}
		r.log.Trace("signalling leftover process", "pid", p.Pid, "name", p.Name, "signal", SignalName(sig))
		sigs := []syscall.Signal{sig}
		if sig == unix.SIGTERM && p.Stopped() {
			sigs = append(sigs, unix.SIGCONT)
		}
		_ = p.Signal(sigs...)
	}
}

// continueStopped sends SIGCONT to the stopped processes below root (0: every process).
func (r *Reaper) continueStopped(root int) {
	procs, _ := Below(root)
	for _, p := range procs {
		if p.Stopped() {
			_ = p.Signal(unix.SIGCONT)
		}
	}
}

// left names the processes left, "pid (name)" each, for the log: every other process as PID 1,
// otherwise tender's descendants. "" when none is left or /proc cannot tell.
func (r *Reaper) left(pid1 bool) string {
	root := os.Getpid()
	if pid1 {
		root = 0
	}
	procs, err := Below(root)
	if err != nil {
		return ""
	}
	const most = 10
	var names []string
	alive := 0
	for _, p := range procs {
		if p.State == 'Z' {
			continue // dead, and reaped in a moment
		}
		if alive++; alive <= most {
			names = append(names, strconv.Itoa(p.Pid)+" ("+p.Name+")")
		}
	}
	if alive > most {
		names = append(names, "and "+strconv.Itoa(alive-most)+" more")
	}
	return strings.Join(names, ", ")
}

func (r *Reaper) watched() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	pids := make([]int, 0, len(r.watchers))
	for pid := range r.watchers {
		pids = append(pids, pid)
	}
	return pids
}
