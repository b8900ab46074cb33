//go:build !(amd64 || arm64)

package reaper

import (
	"os"
	"syscall"
)

// ownHandler: tender catches signals with a handler of its own on this architecture.
const ownHandler = false

// catch catches the urgent signals of sigs with os/signal and returns the others, for
// CatchRest.
func catch(sigs []syscall.Signal, c chan<- os.Signal) []syscall.Signal {
	return catchWithRuntime(sigs, c)
}
