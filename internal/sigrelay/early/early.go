// Package early catches the signals tender forwards as soon as it can: in its init, which Go
// runs right after package syscall's, before the bigger packages tender is made of (hclog, net,
// regexp...) and before main. Until then a signal meets the Go runtime's handler, which drops
// it or ends tender. Only package main imports it: a program that imports package reaper, a
// test say, keeps its signals.
package early

import "github.com/tenderinit/tender/internal/sigrelay"

func init() {
	_, _, _ = sigrelay.Catch(sigrelay.Forwarded())
}

// Release gives the signals back to the Go runtime, for tender's subcommands (status,
// probe...), which are no init: Ctrl-C ends them.
func Release() { sigrelay.Restore() }
