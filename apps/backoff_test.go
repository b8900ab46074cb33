package apps

import (
	"slices"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name    string
		b       Backoff
		uptimes []time.Duration
		delays  []time.Duration
		spent   []int // the exits (from 1) past the budget
	}{
		{"doubles up to the cap", Backoff{Delay: 100 * ms, Max: 500 * ms, MinUptime: time.Second},
			[]time.Duration{0, 0, 0, 0, 0}, []time.Duration{100 * ms, 200 * ms, 400 * ms, 500 * ms, 500 * ms}, nil},
		{"a stable run restarts at once and resets the delay", Backoff{Delay: 100 * ms, Max: time.Second, MinUptime: time.Second},
			[]time.Duration{0, 0, 2 * time.Second, 0, 0}, []time.Duration{100 * ms, 200 * ms, 0, 100 * ms, 200 * ms}, nil},
		{"spent after MaxRestarts quick crashes", Backoff{Delay: ms, Max: ms, MinUptime: time.Second, MaxRestarts: 3},
			[]time.Duration{0, 0, 0, 0}, []time.Duration{ms, ms, ms, ms}, []int{4}},
		{"past the budget the delay still doubles up to the cap", Backoff{Delay: ms, Max: 4 * ms, MinUptime: time.Second, MaxRestarts: 1},
			[]time.Duration{0, 0, 0, 0, 0}, []time.Duration{ms, 2 * ms, 4 * ms, 4 * ms, 4 * ms}, []int{2, 3, 4, 5}},
		{"a stable run resets the budget", Backoff{Delay: ms, Max: ms, MinUptime: time.Second, MaxRestarts: 2},
			[]time.Duration{0, 0, 0, time.Minute, 0, 0, 0}, []time.Duration{ms, ms, ms, 0, ms, ms, ms}, []int{3, 7}},
		{"0 restarts means no budget", Backoff{Delay: 0, Max: 0, MinUptime: time.Second},
			make([]time.Duration, 50), make([]time.Duration, 50), nil},
		{"zero delay stays zero and still counts", Backoff{Delay: 0, Max: 4 * ms, MinUptime: time.Second, MaxRestarts: 2},
			[]time.Duration{0, 0, 0, 0}, []time.Duration{0, 0, 0, 0}, []int{3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			for i, up := range tc.uptimes {
				d, spent := b.Exited(up)
				want, wantSpent := tc.delays[i], slices.Contains(tc.spent, i+1)
				if spent != wantSpent || d != want {
					t.Fatalf("exit %d after %v: got delay %v spent %v, want %v spent %v", i+1, up, d, spent, want, wantSpent)
				}
			}
		})
	}
}
