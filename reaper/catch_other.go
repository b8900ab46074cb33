//go:build !(amd64 || arm64)

package reaper

import "syscall"

// ownHandler: tender catches signals with a handler of its own on this architecture.
const ownHandler = false

// catch catches the urgent signals of sigs with os/signal and returns the others, for
// CatchRest.
func (s *Signals) catch(sigs []syscall.Signal) []syscall.Signal {
	return catchWithRuntime(sigs, s.c)
}

// watchChildren cannot catch SIGCHLD here: the reaper looks for children every childPoll.
func (s *Signals) watchChildren(bool) bool { return false }
