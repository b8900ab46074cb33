package apps

import (
	"time"

	"github.com/hashicorp/go-hclog"
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
		p.log.Error("worker is in a crash loop: retrying while the others serve", "id", s.id,
			"quick_crashes", s.backoff.Quick(), "max_restarts", p.cfg.Backoff.MaxRestarts, "last", last,
			"retry_every", max(p.cfg.Backoff.Max, crashLoopRetry))
	} else {
		p.log.Info("worker is out of its crash loop", "id", s.id, "stable_after", p.cfg.Backoff.MinUptime)
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
