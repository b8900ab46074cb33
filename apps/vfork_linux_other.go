//go:build !(amd64 || arm64)

package apps

import (
	"runtime"
	"syscall"
)

// vfork is a plain fork on the architectures without an assembly vfork here: the child gets a
// copy of tender's memory.
//
//go:nosplit
func vfork() (pid uintptr, errno syscall.Errno) {
	if runtime.GOARCH == "s390x" { // clone's first two arguments are swapped there
		pid, _, errno = syscall.RawSyscall6(syscall.SYS_CLONE, 0, uintptr(syscall.SIGCHLD), 0, 0, 0, 0)
	} else {
		pid, _, errno = syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	}
	return pid, errno
}
