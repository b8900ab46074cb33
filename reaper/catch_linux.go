//go:build amd64 || arm64

package reaper

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/internal/sigrelay"
)

// ownHandler: tender catches signals with a handler of its own on this architecture
// (package sigrelay), which counts them and wakes a reader through a pipe.
const ownHandler = true

// perRound bounds how many of one signal the relay passes on before it looks at the others
// again: a flood of one real-time signal must not hold up a SIGTERM behind it.
const perRound = 64

// catch catches sigs with sigrelay's handler (for tender, package early did already), relays
// them to s.c, and returns the signals left to CatchRest: none, unless a fault's handler is not
// the runtime's. Without a relay (no fd left for a pipe), os/signal catches them all.
func (s *Signals) catch(sigs []syscall.Signal) (later []syscall.Signal) {
	fd, missed, err := sigrelay.Catch(sigs)
	if err != nil {
		return catchWithRuntime(sigs, s.c)
	}
	s.relayed = true
	// The read end is non-blocking: the reader waits in the runtime's poller rather than on a
	// thread of its own.
	go s.relay(os.NewFile(uintptr(fd), "signal relay"))
	for _, sig := range missed {
		if !sigrelay.IsFault(sig) {
			notify(s.c, []syscall.Signal{sig})
		} else {
			later = append(later, sig)
		}
	}
	unblockHere(sigs)
	return later
}

// relay waits for the handler's wake-ups and passes on every signal it counted, in rounds: at
// most perRound of each signal a round, standard signals first, so that however many
// real-time signals are waiting, a SIGTERM goes out within a round. A SIGCHLD (caught only
// while the reaper watches for it) wakes the reaper instead.
func (s *Signals) relay(wakeups *os.File) {
	var buf [512]byte
	more := false
	for {
		if !more {
			if _, err := wakeups.Read(buf[:]); err != nil { // only if the read end were closed
				return
			}
		}
		more = false
		for sig := syscall.Signal(1); sig <= 64; sig++ {
			n := sigrelay.Take(sig, perRound)
			if n == perRound {
				more = true
			}
			if sig == unix.SIGCHLD {
				if n > 0 {
					select {
					case s.children <- struct{}{}:
					default:
					}
				}
				continue
			}
			for ; n > 0; n-- {
				s.c <- sig
			}
		}
	}
}

// watchChildren catches SIGCHLD (on) or sets it back to its default (off), for the reaper
// while it has no child.
func (s *Signals) watchChildren(on bool) bool {
	if !s.relayed {
		return false
	}
	if !on {
		return sigrelay.Uncatch(unix.SIGCHLD) == nil
	}
	_, missed, err := sigrelay.Catch([]syscall.Signal{unix.SIGCHLD})
	return err == nil && len(missed) == 0
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
