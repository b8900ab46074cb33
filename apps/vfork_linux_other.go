//go:build !(amd64 || arm64)

package apps

import (
	"runtime"
	"syscall"
	"unsafe"
)

// cloneParentSettid is CLONE_PARENT_SETTID: the kernel writes the child's pid to the parent's
// memory before the child runs.
const cloneParentSettid = 0x00100000

// vfork is a plain fork on the architectures without an assembly vfork here: the child gets a
// copy of tender's memory. The kernel writes the child's pid to *tid first (parent_tid is
// clone's third argument everywhere).
//
//go:nosplit
func vfork(tid *int32) (pid uintptr, errno syscall.Errno) {
	flags, t := uintptr(syscall.SIGCHLD|cloneParentSettid), uintptr(unsafe.Pointer(tid))
	if runtime.GOARCH == "s390x" { // clone's first two arguments are swapped there
		pid, _, errno = syscall.RawSyscall6(syscall.SYS_CLONE, 0, flags, t, 0, 0, 0)
	} else {
		pid, _, errno = syscall.RawSyscall6(syscall.SYS_CLONE, flags, 0, t, 0, 0, 0)
	}
	return pid, errno
}
