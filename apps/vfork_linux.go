//go:build amd64 || arm64

package apps

import "syscall"

// vfork starts the child sharing tender's memory, with tender's thread stopped until the child
// execs or exits: no copy of tender's page tables, and none of the copy-on-write faults that
// would follow in tender. The kernel writes the child's pid to *tid before the child runs
// (CLONE_PARENT_SETTID), for the reaper. Written in assembly: see forkChild1 for what that asks
// of its caller.
func vfork(tid *int32) (pid uintptr, errno syscall.Errno)
