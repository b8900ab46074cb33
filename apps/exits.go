package apps

import (
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/reaper"
)

// A worker's end, and what its slot does next: nothing (tender stopped it), a restart with
// backoff, a crash loop, a restart on another port when its port was taken, or the end of
// the pool.

// onExit handles a worker's end: expected (tender stopped it) or a crash.
func (g *Group) onExit(w *worker, exit reaper.Exit) {
	p := g.p
	if !p.workers[w] {
		return
	}
	delete(p.workers, w)
	close(w.stop)
	if w.notify != nil {
		w.notify.Close()
	}
	if w.backend != nil {
		p.router.Remove(w.backend)
	}
	s := w.slot
	switch {
	case s.next == w:
		s.next = nil
	case s.worker == w:
		s.worker = nil
	}
	c := crash{w: w, exit: exit, uptime: time.Since(w.started), cleared: w.endLeftovers(),
		oom: exit.Status.Signaled() && exit.Status.Signal() == unix.SIGKILL && p.oom.Struck()}
	if g.isRelease() {
		p.ports.release(w.port)
		p.onReleaseExit(w, exit, c.cleared)
		return
	}
	if w.expected {
		p.ports.release(w.port)
		p.log.Debug("worker stopped", s.logArgs("pid", w.pid, "status", exit.String())...)
		g.afterExit(s)
		return
	}
	if g.web && w.readyAt.IsZero() && w.startErr == nil && w.pid != 0 && !p.stopping {
		// A worker that failed before it was ready may have found its port taken: known once
		// what it left is gone, as that may hold the port too. Meanwhile the slot waits.
		s.waiting = true
		go func() {
			<-c.cleared
			taken := portTaken(w.port)
			p.post(func() {
				s.waiting = false
				p.ports.release(w.port)
				g.onCrash(c, taken)
			})
		}()
		return
	}
	p.ports.release(w.port)
	g.onCrash(c, false)
}

// crash is how a worker ended that tender did not stop.
type crash struct {
	w       *worker
	exit    reaper.Exit
	uptime  time.Duration
	oom     bool
	cleared <-chan struct{} // closed once what it left behind is gone
}

// maxPortRetries bounds the restarts in a row that a taken port spares from the crash budget.
const maxPortRetries = 3

// onCrash restarts the slot of a crashed worker, or not, as the policy, the backoff and the
// other slots say. portTaken: the worker never got ready and someone else listens on its port.
func (g *Group) onCrash(c crash, portTaken bool) {
	p, w, s, exit, uptime := g.p, c.w, c.w.slot, c.exit, c.uptime
	if portTaken && s.portRetries < maxPortRetries && !p.stopping && !s.retiring {
		// It could not bind its port (another program bound it first): no fault of the app's,
		// so no crash to count. It starts again at once, on another port.
		s.portRetries++
		p.log.Info("a worker's port was taken by another program before the worker could bind it: "+
			"restarting it on another port, not counted as a crash", s.logArgs("pid", w.pid, "port", w.port, "exit", exit.String())...)
		g.restartSlot(s, 0, c.cleared)
		return
	}
	s.portRetries = 0
	last := exit.String()
	if c.oom {
		last = "killed by the OOM killer"
		p.log.Log(crashLevel(s, hclog.Warn), "worker killed by the OOM killer", s.logArgs("pid", w.pid, "uptime", uptime.Round(time.Millisecond))...)
	}
	if w.readyAt.IsZero() {
		g.report(w, exit, uptime)
	} else if !c.oom {
		p.log.Log(crashLevel(s, hclog.Warn), "worker exited", s.logArgs("pid", w.pid, "status", exit.String(), "uptime", uptime.Round(time.Millisecond))...)
	}
	if p.stopping {
		g.afterExit(s)
		return
	}
	if s.retiring || !restartWanted(p.cfg.Restart, exit.Code()) {
		p.exitCode = exit.Code()
		g.afterExit(s)
		return
	}
	if w.startErr != nil && !g.served {
		// The command cannot be started at all (not found, a user that cannot be set...): no
		// restart will change that. tender ends with the status a shell would give.
		p.log.Error("the workers cannot be started; stopping", s.logArgs("step", w.startErr.Step, "error", w.startErr.Msg)...)
		p.stop(w.startErr.Code)
		return
	}
	// A worker that never got ready was a failed start however long it lived: timed out after
	// a TENDER_START_TIMEOUT longer than TENDER_MIN_UPTIME (60s and 10s by default), it used
	// to count as stable, restart at once and never reach a crash loop.
	stable := uptime
	if w.readyAt.IsZero() {
		stable = 0
	}
	delay, spent := s.backoff.Exited(stable)
	if s.worker != nil && (spent || w.startErr != nil) {
		g.keepOld(s, exit)
		return
	}
	g.setCrashLoop(s, spent, last)
	if spent {
		if typ := cannotRun(p.health()); typ != "" {
			p.stopCannotRun(typ, last)
			return
		}
		delay = max(delay, crashLoopRetry)
	}
	p.log.Log(crashLevel(s, hclog.Info), "restarting worker", s.logArgs("after", delay, "restarts", s.restarts+1)...)
	g.restartSlot(s, delay, c.cleared)
}

// restartSlot starts a worker for s after delay, once cleared is closed (what its last worker
// left behind is gone: bounded, see leftovers.end).
func (g *Group) restartSlot(s *slot, delay time.Duration, cleared <-chan struct{}) {
	p := g.p
	s.restarts++
	s.waiting = true
	replacing := s.worker != nil // a replacement died; the old worker still serves
	time.AfterFunc(delay, func() {
		<-cleared
		p.post(func() {
			s.waiting = false
			if !p.stopping && !s.retiring && s.next == nil && (replacing == (s.worker != nil)) {
				g.spawn(s, replacing)
			}
		})
	})
}

// keepOld gives up replacing the worker of s, which still serves: its replacements crash (a
// rolling restart or a recycle onto a broken build). The old worker is kept, and not recycled
// again; the rolling restart, if any, stops here, as the next slots would fail the same way.
// A crash budget spent by replacements ends no service.
func (g *Group) keepOld(s *slot, exit reaper.Exit) {
	g.p.log.Error("the replacement of a worker cannot start; keeping the old one", s.logArgs("pid", s.worker.pid,
		"quick_crashes", s.backoff.Quick(), "last", exit.String())...)
	s.worker.kept = true
	s.backoff = g.p.cfg.Backoff
	if g.p.recycling == s.worker {
		g.p.recycling = nil // the next recycle may go on
	}
	if g.rollingSlot == s || len(g.rolling) > 0 {
		g.p.log.Error("rolling restart abandoned", "type", g.name, "left", len(g.rolling))
		g.rolling, g.rollingSlot = nil, nil
	}
}

// report logs why a worker failed to start, with its last lines, and keeps it for status.
func (g *Group) report(w *worker, exit reaper.Exit, lifetime time.Duration) {
	r := &SpawnReport{Pid: w.pid, Exit: exit.String(), LifetimeSeconds: lifetime.Seconds(), At: time.Now(), Output: w.tail.Lines()}
	if w.reason != "" {
		r.Exit = w.reason + " (" + exit.String() + ")"
	}
	if w.startErr != nil {
		r.Step, r.Exit = w.startErr.Step, w.startErr.Msg+" ("+exit.String()+")"
	}
	w.slot.report = r
	args := w.slot.logArgs("pid", w.pid, "exit", r.Exit, "lifetime", lifetime.Round(time.Millisecond))
	if r.Step != "" {
		args = append(args, "step", r.Step)
	}
	if len(r.Output) > 0 {
		args = append(args, "output", r.Output)
	}
	g.p.log.Log(crashLevel(w.slot, hclog.Error), "worker failed to start", args...)
}
