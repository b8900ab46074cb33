//go:build amd64 || arm64

package reaper

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/internal/sigrelay"
)

// ownHandler: tender catches signals with a handler of its own on this architecture
// (package sigrelay), which relays them through a pipe.
const ownHandler = true

// catch catches sigs with sigrelay's handler (for tender, package early did already), relays
// them to c, and returns the signals left to CatchRest: none, unless a fault's handler is not
// the runtime's. Without a relay (no fd left for a pipe), os/signal catches them all.
func catch(sigs []syscall.Signal, c chan<- os.Signal) (later []syscall.Signal) {
	fd, missed, err := sigrelay.Catch(sigs)
	if err != nil {
		return catchWithRuntime(sigs, c)
	}
	// The read end is non-blocking: the reader waits in the runtime's poller rather than on a
	// thread of its own.
	relay := os.NewFile(uintptr(fd), "signal relay")
	go func() {
		var buf [128]byte
		for {
			n, err := relay.Read(buf[:])
			if err != nil { // only if the read end were closed: it never is
				return
			}
			for _, b := range buf[:n] {
				c <- syscall.Signal(b)
			}
		}
	}()
	for _, sig := range missed {
		if !sigrelay.IsFault(sig) {
			notify(c, []syscall.Signal{sig})
		} else {
			later = append(later, sig)
		}
	}
	unblockHere(sigs)
	return later
}

// unblockHere unblocks sigs in the calling thread. The signals blocked in the process that
// started tender stay blocked in every thread the runtime starts, but for those the runtime
// handles itself (os/signal unblocks the others in a thread of its own as it catches them). A
// signal sent to the process reaches any one thread that takes it, and one is enough: this
// one, as the runtime's threads live as long as the process (tender never ends a goroutine
// locked to its thread).
func unblockHere(sigs []syscall.Signal) {
	var set unix.Sigset_t
	for _, sig := range sigs {
		set.Val[(sig-1)/64] |= 1 << ((sig - 1) % 64)
	}
	_ = unix.PthreadSigmask(unix.SIG_UNBLOCK, &set, nil)
}
