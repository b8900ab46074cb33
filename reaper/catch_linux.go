//go:build amd64 || arm64

package reaper

import (
	"os"
	"slices"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tender's own signal handler is handler, in catch_linux_$GOARCH.s. The kernel calls it with
// the signal's number; it writes that number, one byte, to a pipe (the relay) and returns, and
// a goroutine reads the relay and sends each signal on: the self-pipe trick of C inits. The
// runtime's handler does much the same for os/signal, but os/signal enables each signal with a
// round trip to a thread of the runtime's; installing handler is one rt_sigaction.
//
// handler drops the signals that tender sent itself: in practice the SIGPIPE the kernel sends a
// process that writes to a socket or pipe whose reader is gone (a client of the balancer that
// went away), which is tender's own business and not the apps'. A signal that finds the relay
// full (64 KiB of signals not yet relayed) is dropped rather than waited for.
//
// handler touches no Go state, has no frame and writes from numbers, not from a stack: it may
// run on any thread at any instant. It runs on the thread's signal stack (every thread of a Go
// program has one) with every signal blocked, and the system calls it interrupts are restarted.
// A child gets it back as SIG_DFL: the clean start resets every signal before its exec.

// ownHandler: tender catches signals with a handler of its own on this architecture.
const ownHandler = true

// handlerAddrs returns the addresses of handler, of faultHandler and of the restorer that
// returns from them, 0 where the kernel provides one.
func handlerAddrs() (handler, fault, restorer uintptr)

var (
	// relayFd is the relay's write end; -1 until catch opens it, so that a stray call of
	// handler writes nowhere.
	//lint:ignore U1000 read by handler, in assembly
	relayFd int32 = -1
	// numbers[n] is n: handler writes the byte at &numbers[sig].
	numbers [65]byte
	// selfPid is tender's pid, to tell the signals it sent itself.
	//lint:ignore U1000 read by handler, in assembly
	selfPid int32
	// faultChain is the runtime's handler of the faults, where faultHandler passes on those
	// that tender's own code raised.
	faultChain uintptr
)

// faults are the signals that tender's own code may cause, and the runtime must then handle
// (a nil pointer becomes a panic); sent with kill, they are forwarded like any other.
var faults = []syscall.Signal{unix.SIGILL, unix.SIGTRAP, unix.SIGBUS, unix.SIGFPE, unix.SIGSEGV}

const (
	saSiginfo  = 0x4
	saRestorer = 0x04000000
	saOnStack  = 0x08000000
	saRestart  = 0x10000000
)

// catch catches sigs with handler, the faults with faultHandler, and returns the signals left
// to CatchRest: none, unless a fault's handler is not the runtime's. Without a relay (no fd left
// for a pipe), os/signal catches them all.
func catch(sigs []syscall.Signal, c chan<- os.Signal) (later []syscall.Signal) {
	if err := openRelay(c); err != nil {
		return catchWithRuntime(sigs, c)
	}
	handler, fault, _ := handlerAddrs()
	var failed []syscall.Signal
	for _, sig := range sigs {
		h := handler
		if slices.Contains(faults, sig) {
			if !chainable(sig) {
				later = append(later, sig)
				continue
			}
			h = fault
		}
		if handle(sig, h) != nil {
			failed = append(failed, sig)
		}
	}
	notify(c, failed)
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

// chainable reports whether faultHandler can pass sig on to the runtime's handler: sig has
// one, the same as the other faults'.
func chainable(sig syscall.Signal) bool {
	var old sigaction
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
		return false
	}
	if old.handler == sigDfl || old.handler == sigIgn || old.flags&saSiginfo == 0 {
		return false
	}
	if faultChain == 0 {
		faultChain = old.handler
	}
	return old.handler == faultChain
}

// openRelay opens the relay, both ends non-blocking: handler never waits, and the reader waits
// in the runtime's poller rather than on a thread of its own.
func openRelay(c chan<- os.Signal) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return err
	}
	for i := range numbers {
		numbers[i] = byte(i)
	}
	relayFd = int32(p[1])
	selfPid = int32(unix.Getpid())
	relay := os.NewFile(uintptr(p[0]), "signal relay")
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
	return nil
}

// handle makes h sig's handler.
func handle(sig syscall.Signal, h uintptr) error {
	_, _, restorer := handlerAddrs()
	sa := sigaction{handler: h, flags: saSiginfo | saOnStack | saRestart, restorer: restorer, mask: ^uint64(0)}
	if restorer != 0 {
		sa.flags |= saRestorer
	}
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0); e != 0 {
		return e
	}
	return nil
}
