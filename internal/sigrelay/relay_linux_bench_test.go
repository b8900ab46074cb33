//go:build amd64 || arm64

package sigrelay

import (
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// BenchmarkCatchSignal is what catching one signal costs, with os/signal (a round trip to the
// runtime's signal thread to enable it, and one to disable it again, per op) and with tender's
// handler (one rt_sigaction). Each uses a real-time signal of its own that nothing sends.
func BenchmarkCatchSignal(b *testing.B) {
	b.Run("os-signal", func(b *testing.B) {
		c := make(chan os.Signal, 1)
		for b.Loop() {
			signal.Notify(c, syscall.Signal(60))
			signal.Stop(c)
		}
	})
	b.Run("handler", func(b *testing.B) {
		h, _, _ := handlerAddrs()
		for b.Loop() {
			if err := handle(61, h); err != nil {
				b.Fatal(err)
			}
		}
	})
}
