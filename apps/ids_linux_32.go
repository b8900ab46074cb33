//go:build linux && (386 || arm)

package apps

import "syscall"

// The system calls that change the ids, with 32-bit ids: the plain ones take 16-bit ids here.
const (
	sysSetgroups = syscall.SYS_SETGROUPS32
	sysSetgid    = syscall.SYS_SETGID32
	sysSetuid    = syscall.SYS_SETUID32
)
