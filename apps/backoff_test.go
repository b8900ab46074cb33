package apps

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name    string
		b       Backoff
		uptimes []time.Duration
		delays  []time.Duration // -1 = gives up
	}{
		{"doubles up to the cap", Backoff{Delay: 100 * ms, Max: 500 * ms, MinUptime: time.Second},
			[]time.Duration{0, 0, 0, 0, 0}, []time.Duration{100 * ms, 200 * ms, 400 * ms, 500 * ms, 500 * ms}},
		{"a stable run restarts at once and resets the delay", Backoff{Delay: 100 * ms, Max: time.Second, MinUptime: time.Second},
			[]time.Duration{0, 0, 2 * time.Second, 0, 0}, []time.Duration{100 * ms, 200 * ms, 0, 100 * ms, 200 * ms}},
		{"gives up after MaxRestarts quick crashes", Backoff{Delay: ms, Max: ms, MinUptime: time.Second, MaxRestarts: 3},
			[]time.Duration{0, 0, 0, 0}, []time.Duration{ms, ms, ms, -1}},
		{"a stable run resets the budget", Backoff{Delay: ms, Max: ms, MinUptime: time.Second, MaxRestarts: 2},
			[]time.Duration{0, 0, time.Minute, 0, 0, 0}, []time.Duration{ms, ms, 0, ms, ms, -1}},
		{"0 restarts means never give up", Backoff{Delay: 0, Max: 0, MinUptime: time.Second},
			make([]time.Duration, 50), make([]time.Duration, 50)},
		{"zero delay stays zero and still counts", Backoff{Delay: 0, Max: 4 * ms, MinUptime: time.Second, MaxRestarts: 2},
			[]time.Duration{0, 0, 0}, []time.Duration{0, 0, -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			for i, up := range tc.uptimes {
				d, giveUp := b.Exited(up)
				want := tc.delays[i]
				if giveUp != (want < 0) || (!giveUp && d != want) {
					t.Fatalf("exit %d after %v: got delay %v giveUp %v, want %v", i+1, up, d, giveUp, want)
				}
			}
		})
	}
}
