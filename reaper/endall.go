package reaper

import (
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// killWait bounds the wait after SIGKILL: a process stuck in an uninterruptible sleep may never
// die, and tender must not wait for it forever.
const killWait = 5 * time.Second

// rescan is how often EndAll looks for processes that were forked after it sent SIGTERM.
const rescan = 20 * time.Millisecond

// EndAll ends every process left once the main child is gone: SIGTERM (and SIGCONT, as
// systemd sends it, so that a stopped process acts on the SIGTERM too), then SIGKILL after
// grace, reaping them all. It returns at once when no child is left.
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
		tick := time.NewTicker(rescan)
		defer tick.Stop()
	wait:
		for {
			select {
			case <-r.Gone():
				return
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

	r.log.Debug("sending SIGKILL to the processes left", "after", grace)
	stop := time.NewTimer(killWait)
	defer stop.Stop()
	tick := time.NewTicker(rescan)
	defer tick.Stop()
	for {
		r.signalLeft(unix.SIGKILL, pid1, nil)
		select {
		case <-r.Gone():
			return
		case <-tick.C:
		case <-stop.C:
			r.log.Warn("processes are still alive after SIGKILL; giving up on them", "waited", killWait)
			return
		}
	}
}

// signalLeft sends sig to every process left: all of them as PID 1, otherwise the
// descendants not yet in done (which it updates when not nil).
func (r *Reaper) signalLeft(sig syscall.Signal, pid1 bool, done map[Proc]bool) {
	cont := sig == unix.SIGTERM
	if pid1 {
		if err := unix.Kill(-1, sig); err != nil && err != unix.ESRCH {
			r.log.Warn("cannot signal the processes left", "signal", SignalName(sig), "error", err)
		}
		if cont {
			_ = unix.Kill(-1, unix.SIGCONT)
		}
		return
	}
	sigs := []syscall.Signal{sig}
	if cont {
		sigs = append(sigs, unix.SIGCONT)
	}
	procs, err := Descendants(os.Getpid())
	if err != nil {
		r.log.Debug("cannot list descendants; signalling the children tender started", "error", err)
		for _, pid := range r.watched() {
			if done != nil {
				if done[Proc{Pid: pid}] {
					continue
				}
				done[Proc{Pid: pid}] = true
			}
			for _, s := range sigs {
				_ = unix.Kill(pid, s)
			}
		}
		return
	}
	for _, p := range procs {
		if done != nil {
			if done[p] {
				continue
			}
			done[p] = true
		}
		r.log.Trace("signalling leftover process", "pid", p.Pid, "signal", SignalName(sig))
		_ = p.Signal(sigs...)
	}
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
