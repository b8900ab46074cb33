package apps

import (
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tenderinit/tender/procfile"
)

// A slot in a crash loop has crashed quickly more than TENDER_MAX_RESTARTS times in a row. It
// is not given up: it retries with its capped backoff, at least crashLoopRetry apart so that a
// zero delay cannot make it spin, while the other workers serve. One worker OOM-killed again
// and again used to end a pool whose three other workers served every request.
const crashLoopRetry = time.Second

// crashLoopState is a slot's state in the status while it waits to retry in a crash loop.
const crashLoopState = "crashloop"

// slotHealth is what the pool's verdict looks at in a slot.
type slotHealth struct {
	serving   bool // its worker is ready
	crashLoop bool
}

// noneCanServe reports whether the slots have failed for good: none serves and every one is in
// a crash loop. Only then does tender exit 1 (for a deployment that never started, after every
// slot has spent its budget); while any slot serves, or may still come up, availability comes
// first. No slots at all is no failure: the pool was scaled, or is stopping.
func noneCanServe(slots []slotHealth) bool {
	for _, s := range slots {
		if s.serving || !s.crashLoop {
			return false
		}
	}
	return len(slots) > 0
}

// typeHealth is one process type as cannotRun sees it.
type typeHealth struct {
	name  string
	slots []slotHealth
}

// cannotRun is the first process type that cannot run at all: every one of its slots in a
// crash loop and none up (noneCanServe); "" when every type can. It ends tender with 1 even
// while the other types run: a job runner that never runs is an outage the orchestrator must
// see, though the web type answers every request. One failing slot of a type that still runs
// is no such outage, and neither is a type scaled to nothing.
func cannotRun(types []typeHealth) string {
	for _, t := range types {
		if noneCanServe(t.slots) {
			return t.name
		}
	}
	return ""
}

// health is the pool's process types as cannotRun sees them.
func (p *Pool) health() []typeHealth {
	out := make([]typeHealth, 0, len(p.groups))
	for _, g := range p.groups {
		out = append(out, typeHealth{name: g.name, slots: g.health()})
	}
	return out
}

// stopCannotRun stops the pool with 1: process type typ cannot run at all. last is the crash
// that made it so.
func (p *Pool) stopCannotRun(typ, last string) {
	if typ == procfile.Web {
		p.log.Error("every worker is in a crash loop: none can serve; stopping", "type", typ, "last", last)
	} else {
		p.log.Error("every worker of a process type is in a crash loop: the type cannot run; stopping", "type", typ, "last", last)
	}
	p.stop(1)
}

// health is the group's slots as noneCanServe sees them; retiring slots do not count.
func (g *Group) health() []slotHealth {
	var out []slotHealth
	for _, s := range g.slots {
		if !s.retiring {
			out = append(out, slotHealth{serving: s.worker != nil && s.worker.state == Ready, crashLoop: s.crashLoop})
		}
	}
	return out
}

// setCrashLoop records whether s is in a crash loop, and says so in the log when that changes:
// once, not at every crash. last is the crash that put it there.
func (g *Group) setCrashLoop(s *slot, on bool, last string) {
	p := g.p
	if s.crashLoop == on {
		return
	}
	s.crashLoop = on
	if on {
		p.log.Error("worker is in a crash loop: retrying while the others serve", s.logArgs(
			"quick_crashes", s.backoff.Quick(), "max_restarts", p.cfg.Backoff.MaxRestarts, "last", last,
			"retry_every", max(p.cfg.Backoff.Max, crashLoopRetry))...)
	} else {
		p.log.Info("worker is out of its crash loop", s.logArgs("stable_after", p.cfg.Backoff.MinUptime)...)
	}
}

// watchRecovery takes the slot of w out of its crash loop once w has lived TENDER_MIN_UPTIME,
// the uptime after which the backoff counts it stable.
func (w *worker) watchRecovery() {
	p := w.p
	time.AfterFunc(time.Until(w.started.Add(p.cfg.Backoff.MinUptime)), func() {
		p.post(func() {
			if p.workers[w] && w.slot.worker == w && w.state == Ready {
				w.slot.g.setCrashLoop(w.slot, false, "")
			}
		})
	})
}

// crashLevel is the level of the lines about one crash of s: a slot in a crash loop has said
// so once, and its status keeps the last report; its every retry is no news.
func crashLevel(s *slot, level hclog.Level) hclog.Level {
	if s.crashLoop {
		return hclog.Debug
	}
	return level
}
