package reaper

import (
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestExitCodeAndString(t *testing.T) {
	for _, tc := range []struct {
		status unix.WaitStatus
		code   int
		text   string
	}{
		{0, 0, "exit status 0"},
		{7 << 8, 7, "exit status 7"},
		{255 << 8, 255, "exit status 255"},
		{unix.WaitStatus(unix.SIGKILL), 137, "killed by SIGKILL"},
		{unix.WaitStatus(unix.SIGTERM), 143, "killed by SIGTERM"},
		{unix.WaitStatus(unix.SIGSEGV) | 0x80, 139, "killed by SIGSEGV (core dumped)"},
		{unix.WaitStatus(64), 128 + 64, "killed by SIGRTMIN+30"},
		{unix.WaitStatus(33), 128 + 33, "killed by signal 33"},
	} {
		e := Exit{Pid: 1, Status: tc.status}
		if e.Code() != tc.code || e.String() != tc.text {
			t.Errorf("status %#x: got %d %q, want %d %q", int(tc.status), e.Code(), e.String(), tc.code, tc.text)
		}
	}
}

func TestParseStatPPid(t *testing.T) {
	for stat, want := range map[string]int{
		"12 (sh) S 1 12 12 0":        1,
		"77 (a) b) (c) R 42 77 77 0": 42,
		"9 (with space) Z 3 9 9":     3,
		"5 (x)":                      -1,
		"garbage":                    -1,
	} {
		got, ok := ParseStatPPid([]byte(stat))
		if (want < 0) == ok || (ok && got != want) {
			t.Errorf("ParseStatPPid(%q) = %d, %v; want %d", stat, got, ok, want)
		}
	}
}

// Between them, the urgent signals and the rest are every signal tender can catch, once each,
// but the two it must leave alone: SIGCHLD (the reaper waits instead) and SIGURG (the runtime's).
func TestCaughtSignals(t *testing.T) {
	seen := map[os.Signal]int{}
	for _, sig := range append(append([]os.Signal{}, urgent...), rest()...) {
		seen[sig]++
	}
	for sig := syscall.Signal(1); sig <= 64; sig++ {
		want := 1
		switch sig {
		case unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGURG:
			want = 0
		}
		if seen[sig] != want {
			t.Errorf("signal %d (%s) caught %d times, want %d", sig, SignalName(sig), seen[sig], want)
		}
	}
}
