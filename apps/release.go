package apps

import (
	"time"

	"github.com/tenderinit/tender/procfile"
	"github.com/tenderinit/tender/reaper"
)

// The release phase, Heroku's: a Procfile's release type runs once, alone and to completion,
// before any other type starts (a database migration before anything serves). It is a group
// of one worker that is never restarted, replaced or timed out: a migration takes what it
// takes. Its exit decides: 0 starts the other types; anything else ends tender with that
// status (128+N when signal N killed it), and nothing else starts. While it runs, signals go
// to it, and SIGTERM or SIGINT stop it (SIGTERM, SIGKILL after TENDER_KILL_GRACE) and end
// tender with its status.

// startRelease starts the release phase; the other groups start when it succeeds.
func (p *Pool) startRelease() {
	p.log.Info("release phase: running the release type before the others")
	p.release.start()
}

// releasing reports whether the release phase is on: from its start until the other groups
// start (what it left behind is ended first), or tender stops.
func (p *Pool) releasing() bool {
	return p.release != nil && !p.groupsStarted && !p.stopping
}

// isRelease reports whether g is the release phase.
func (g *Group) isRelease() bool { return g == g.p.release }

// onReleaseStarted counts the release process as running from its start: nothing is waited
// for but its exit.
func (w *worker) onReleaseStarted() {
	w.state, w.via = Ready, readyUptime
	w.p.log.Info("release phase: started", w.slot.logArgs("pid", w.pid)...)
}

// onReleaseExit ends the release phase: the other groups start once what it left behind is
// gone, or tender stops with its status.
func (p *Pool) onReleaseExit(w *worker, exit reaper.Exit, cleared <-chan struct{}) {
	code, took := exit.Code(), time.Since(w.started).Round(time.Millisecond)
	switch {
	case p.stopping:
		p.log.Info("release phase stopped", w.slot.logArgs("status", exit.String(), "after", took)...)
		p.exitCode = code
	case code != 0:
		p.log.Error("release phase failed: nothing else starts", w.slot.logArgs("pid", w.pid, "status", exit.String(),
			"after", took, "output", w.tail.Lines())...)
		p.stop(code)
	default:
		p.log.Info("release phase done: starting the other process types", "after", took)
		go func() {
			<-cleared
			p.post(p.startGroups)
		}()
	}
}

// startGroups starts every group but the release phase; with none to start, the pool is done.
func (p *Pool) startGroups() {
	if p.stopping {
		return
	}
	p.groupsStarted = true
	for _, g := range p.groups {
		g.start()
	}
	p.stopIfNoneLeft()
}

// newGroups makes the pool's groups, the release phase apart (when its count is not 0).
func (p *Pool) newGroups(types []TypeConfig) {
	for _, t := range types {
		switch {
		case t.Name != procfile.Release:
			p.groups = append(p.groups, newGroup(p, t))
		case t.Count > 0:
			p.release = newGroup(p, TypeConfig{Name: t.Name, Command: t.Command, Args: t.Args, Count: 1})
		}
	}
}
