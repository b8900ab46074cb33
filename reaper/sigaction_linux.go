package reaper

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sigaction is the kernel's struct sigaction on amd64 and arm64.
type sigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const (
	sigDfl = 0
	sigIgn = 1
)

// Ignored reports whether sig is set to SIG_IGN. os/signal cannot tell: it knows only the
// signals it manages itself.
func Ignored(sig syscall.Signal) (bool, error) {
	var old sigaction
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
		return false, e
	}
	return old.handler == sigIgn, nil
}

// SetDefault sets sig to SIG_DFL, behind the Go runtime's back: os/signal.Reset keeps the
// runtime's own handler installed.
func SetDefault(sig syscall.Signal) error {
	dfl := sigaction{handler: sigDfl}
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0); e != 0 {
		return e
	}
	return nil
}
