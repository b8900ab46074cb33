//go:build amd64 || arm64

package apps

import "syscall"

// vfork starts the child sharing tender's memory, with tender's thread stopped until the child
// execs or exits: no copy of tender's page tables, and none of the copy-on-write faults that
// would follow in tender. Written in assembly: see forkChild1 for what that asks of its caller.
func vfork() (pid uintptr, errno syscall.Errno)
