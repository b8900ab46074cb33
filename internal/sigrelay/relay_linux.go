//go:build amd64 || arm64

package sigrelay

import (
	"sync/atomic"
	"syscall"
	"unsafe"
)

// tender's own signal handler is handler, in relay_linux_$GOARCH.s. The kernel calls it with
// the signal's number; it adds one to that signal's count in pending, writes one byte to a pipe
// (the relay) to wake the reader, and returns. A goroutine of package reaper waits on the relay
// and takes the counts (Take), and sends each signal on: the self-pipe trick of C inits, with
// the count kept apart from the pipe so that nothing is lost when the pipe is full. The byte is
// only a wake-up: when the relay is full (64 KiB of wake-ups not yet read, a flood of real-time
// signals), the write fails and the signal is still counted, and the reader, which has those
// bytes to read, will see it. The runtime's handler does much the same for os/signal, but
// os/signal enables each signal with a round trip to a thread of the runtime's; installing
// handler is one rt_sigaction.
//
// handler drops the signals that tender sent itself: in practice the SIGPIPE the kernel sends a
// process that writes to a socket or pipe whose reader is gone (a client of the balancer that
// went away), which is tender's own business and not the apps'.
//
// handler touches no Go state but pending (atomically), has no frame and writes from numbers,
// not from a stack: it may run on any thread at any instant. It runs on the thread's signal
// stack (every thread of a Go program has one) with every signal blocked, and the system calls
// it interrupts are restarted. A child gets it back as SIG_DFL: the clean start resets every
// signal before its exec.

// handlerAddrs returns the addresses of handler, of faultHandler and of the restorer that
// returns from them, 0 where the kernel provides one.
func handlerAddrs() (handler, fault, restorer uintptr)

var (
	// relayFd is the relay's write end; -1 until Catch opens it, so that a stray call of
	// handler writes nowhere.
	//lint:ignore U1000 read by handler, in assembly
	relayFd int32 = -1
	// relayRead is the relay's read end, for package reaper.
	relayRead = -1
	// numbers[n] is n: handler writes the byte at &numbers[sig] (any byte would do).
	numbers [65]byte
	// pending[sig] counts the deliveries of sig not yet taken: handler adds, Take subtracts.
	pending [65]uint32
	// selfPid is tender's pid, to tell the signals it sent itself.
	//lint:ignore U1000 read by handler, in assembly
	selfPid int32
	// faultChain is the runtime's handler of the faults, where faultHandler passes on those
	// that tender's own code raised.
	faultChain uintptr
	// found are the handlers Catch replaced, for Restore, where saved says so.
	found [65]sigaction
	saved [65]bool
	// caught says which signals have handler or faultHandler now.
	caught [65]bool
)

// sigaction is the kernel's struct sigaction on amd64 and arm64.
type sigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const (
	sigDfl     = 0
	sigIgn     = 1
	saSiginfo  = 0x4
	saRestorer = 0x04000000
	saOnStack  = 0x08000000
	saRestart  = 0x10000000
)

// Catch makes handler the handler of sigs, and faultHandler that of the faults among them,
// and returns the relay's read end and the signals it could not catch: the faults whose
// handler is not the runtime's, and any the kernel refused. It may be called again, for more
// signals: the relay stays the same, and a signal caught already is not caught again.
func Catch(sigs []syscall.Signal) (relay int, missed []syscall.Signal, err error) {
	if relayRead < 0 {
		var p [2]int32
		if _, _, e := syscall.RawSyscall(syscall.SYS_PIPE2, uintptr(unsafe.Pointer(&p[0])), syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0); e != 0 {
			return -1, sigs, e
		}
		for i := range numbers {
			numbers[i] = byte(i)
		}
		pid, _, _ := syscall.RawSyscall(syscall.SYS_GETPID, 0, 0, 0)
		selfPid = int32(pid)
		relayFd, relayRead = p[1], int(p[0])
	}
	handler, fault, _ := handlerAddrs()
	for _, sig := range sigs {
		if caught[sig] {
			continue
		}
		h := handler
		if IsFault(sig) {
			if !chainable(sig) {
				missed = append(missed, sig)
				continue
			}
			h = fault
		}
		if handle(sig, h) != nil {
			missed = append(missed, sig)
		}
	}
	return relayRead, missed, nil
}

// Restore gives every signal Catch caught its handler back (the Go runtime's): for tender's
// subcommands, which are no init.
func Restore() {
	for sig := range found {
		if saved[sig] {
			_ = rtSigaction(syscall.Signal(sig), &found[sig], nil)
			saved[sig], caught[sig] = false, false
		}
	}
}

// chainable reports whether faultHandler can pass sig on to the runtime's handler: sig has
// one, the same as the other faults'.
func chainable(sig syscall.Signal) bool {
	old := &found[sig]
	if !saved[sig] {
		old = new(sigaction)
		if rtSigaction(sig, nil, old) != nil {
			return false
		}
	}
	if old.handler == sigDfl || old.handler == sigIgn || old.flags&saSiginfo == 0 {
		return false
	}
	if faultChain == 0 {
		faultChain = old.handler
	}
	return old.handler == faultChain
}

// handle makes h sig's handler, and keeps the one it replaces, the first time, for Restore.
func handle(sig syscall.Signal, h uintptr) error {
	_, _, restorer := handlerAddrs()
	sa := sigaction{handler: h, flags: saSiginfo | saOnStack | saRestart, restorer: restorer, mask: ^uint64(0)}
	if restorer != 0 {
		sa.flags |= saRestorer
	}
	var old sigaction
	if err := rtSigaction(sig, &sa, &old); err != nil {
		return err
	}
	if !saved[sig] {
		found[sig], saved[sig] = old, true
	}
	caught[sig] = true
	return nil
}

func rtSigaction(sig syscall.Signal, sa, old *sigaction) error {
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(sa)), uintptr(unsafe.Pointer(old)), 8, 0, 0); e != 0 {
		return e
	}
	return nil
}

// Take takes up to max deliveries of sig that the handler counted, and returns how many it
// took; the rest stay pending for the next call.
func Take(sig syscall.Signal, max uint32) uint32 {
	for {
		n := atomic.LoadUint32(&pending[sig])
		take := min(n, max)
		if take == 0 || atomic.CompareAndSwapUint32(&pending[sig], n, n-take) {
			return take
		}
	}
}

// Uncatch sets sig back to SIG_DFL, for a signal tender catches only for a while (SIGCHLD,
// while it has no child: see package reaper). Its count stays for Take.
func Uncatch(sig syscall.Signal) error {
	if !caught[sig] {
		return nil
	}
	if err := rtSigaction(sig, &sigaction{handler: sigDfl}, nil); err != nil {
		return err
	}
	caught[sig] = false
	return nil
}
