// Package sigrelay catches the signals tender forwards with a signal handler of its own, on
// amd64 and arm64, and relays them through a pipe; package reaper reads the pipe.
//
// It is a package of its own so that tender can catch signals before its other packages are
// initialised (package early): a signal that arrives first meets the Go runtime's handler,
// which drops it (SIGUSR1, SIGWINCH...) or ends tender (SIGTERM: as PID 1, with exit status 2).
// It imports nothing but syscall, so that it is initialised among the first packages.
package sigrelay

import "syscall"

// Forwarded lists every signal tender forwards: each catchable signal but SIGCHLD (the reaper
// waits in wait4 instead), SIGURG (the Go runtime's preemption signal) and signal 33 (the
// runtime's own, for system calls on every thread; glibc's too, no app can use it).
func Forwarded() []syscall.Signal {
	sigs := make([]syscall.Signal, 0, 64)
	for sig := syscall.Signal(1); sig <= 64; sig++ {
		switch sig {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, 33:
			continue
		}
		sigs = append(sigs, sig)
	}
	return sigs
}

// IsFault reports whether sig is one that tender's own code may cause, and the Go runtime must
// then handle (a nil pointer becomes a panic); sent with kill, a fault is forwarded like any
// other signal.
func IsFault(sig syscall.Signal) bool {
	switch sig {
	case syscall.SIGILL, syscall.SIGTRAP, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV:
		return true
	}
	return false
}
