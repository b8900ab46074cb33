//go:build linux && !(386 || arm)

package apps

import "syscall"

// The system calls that change the ids, with 32-bit ids.
const (
	sysSetgroups = syscall.SYS_SETGROUPS
	sysSetgid    = syscall.SYS_SETGID
	sysSetuid    = syscall.SYS_SETUID
)
