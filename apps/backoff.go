package apps

import "time"

// Backoff decides when a process that exited starts again. A process that lived MinUptime
// was stable: it starts again at once, and the count starts afresh. Quick crashes in a row
// wait Delay, doubling each time up to Max; more than MaxRestarts of them (0 = no limit) spend
// the budget: a single child is given up, a pool's slot is in a crash loop.
type Backoff struct {
	Delay, Max  time.Duration
	MinUptime   time.Duration
	MaxRestarts int

	quick int           // quick crashes in a row
	next  time.Duration // the delay after the next quick crash
	begun bool
}

// Exited records an exit after uptime and returns how long to wait before the restart, and
// spent when the quick crashes in a row are past the budget. The delay goes on doubling up to
// Max past the budget too, for who retries all the same.
func (b *Backoff) Exited(uptime time.Duration) (delay time.Duration, spent bool) {
	if uptime >= b.MinUptime || !b.begun {
		b.quick, b.next, b.begun = 0, b.Delay, true
	}
	if uptime >= b.MinUptime {
		return 0, false
	}
	b.quick++
	delay = b.next
	b.next = min(b.next*2, b.Max)
	return delay, b.MaxRestarts > 0 && b.quick > b.MaxRestarts
}

// Quick is the number of quick crashes in a row so far.
func (b *Backoff) Quick() int { return b.quick }
