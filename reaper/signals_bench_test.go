package reaper

import (
	"os"
	"os/signal"
	"testing"
)

// BenchmarkCatchSignals is what CatchSignals costs before any app starts: an op catches the
// urgent signals and lets them go again, one round trip to the runtime's signal thread each
// way per signal; µs/signal is the cost of one, half of what an op spends per signal.
func BenchmarkCatchSignals(b *testing.B) {
	c := make(chan os.Signal, 1)
	for b.Loop() {
		signal.Notify(c, urgent...)
		signal.Stop(c)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(2*len(urgent))/1e3, "µs/signal")
}
