package nofile

import (
	"syscall"
	"testing"
)

// The test binary is a Go program too: syscall's init raised its soft limit after this
// package read it, unless it was already at the hard limit.
func TestAtStartIsBeforeGosRaise(t *testing.T) {
	start, ok := AtStart()
	if !ok {
		t.Fatal("RLIMIT_NOFILE could not be read at start")
	}
	var now syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if start.Max != now.Max {
		t.Errorf("hard limit %d at start, %d now: want the same", start.Max, now.Max)
	}
	raised := start.Cur < now.Max-1
	if raised && now.Cur != now.Max-1 {
		t.Errorf("soft limit %d at start, %d now: Go should have raised it to %d", start.Cur, now.Cur, now.Max-1)
	}
	if !raised && start.Cur != now.Cur {
		t.Errorf("soft limit %d at start, %d now: Go had no reason to change it", start.Cur, now.Cur)
	}
}
