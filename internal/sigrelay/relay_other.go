//go:build !(amd64 || arm64)

package sigrelay

import "syscall"

// Catch catches nothing here: tender has a handler of its own on amd64 and arm64 only, and
// package reaper uses os/signal elsewhere.
func Catch(sigs []syscall.Signal) (relay int, missed []syscall.Signal, err error) {
	return -1, sigs, syscall.ENOSYS
}

// Restore has nothing to restore here.
func Restore() {}
