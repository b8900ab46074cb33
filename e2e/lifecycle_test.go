package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tenderHealth runs tender health against the tender whose control socket is sock.
func tenderHealth(t *testing.T, sock string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin.tender, "health")
	cmd.Env = append(cleanEnv(), "TENDER_CONTROL="+sock)
	out, err := cmd.CombinedOutput()
	return exitCode(cmd.ProcessState, err), strings.TrimSpace(string(out))
}

// In single mode a SIGTERM is held back for TENDER_SHUTDOWN_DELAY, while tender health says
// tender is stopping, then passed on.
func TestShutdownDelayHoldsTheSignalBack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	report, sock := filepath.Join(dir, "signals"), filepath.Join(dir, "control.sock")
	r := startTender(t, AsPID1, []string{"TENDER_SHUTDOWN_DELAY=1s", "TENDER_CONTROL=" + sock}, "--", bin.testapp, "signals", report)
	waitReady(t, report)
	eventually(t, 5*time.Second, "tender health to say healthy", func() bool {
		code, out := tenderHealth(t, sock)
		return code == 0 && out == "healthy: the app is running"
	})
	start := time.Now()
	r.Signal(syscall.SIGTERM)
	eventually(t, 5*time.Second, "tender health to say stopping", func() bool {
		code, out := tenderHealth(t, sock)
		return code == 1 && out == "unhealthy: tender is stopping (SIGTERM or SIGINT received)"
	})
	if got := readSignals(report); len(got) > 0 && time.Since(start) < 900*time.Millisecond {
		t.Errorf("the app received %v within the shutdown delay", got)
	}
	if code := r.Wait(10 * time.Second); code != 0 {
		t.Errorf("exit status %d, want the app's 0 on SIGTERM", code)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("the app ended %v after SIGTERM, before the shutdown delay of 1s", took)
	}
	if got := readSignals(report); len(got) != 1 || got[0] != 15 {
		t.Errorf("the app received %v, want [15]", got)
	}
}
