package e2e

import (
	"net/http"
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

// A pool with TENDER_SHUTDOWN_DELAY serves on after SIGTERM, for the delay, while tender
// health and /healthz say it is stopping; then it stops gracefully, with 0.
func TestPoolShutdownDelayServesOn(t *testing.T) {
	t.Parallel()
	front, admin := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	p := startPool(t, []string{"TENDER_WORKERS=2", "TENDER_LISTEN=" + front, "TENDER_ADMIN=" + admin, "TENDER_SHUTDOWN_DELAY=1500ms"},
		"--", bin.testapp, "serve")
	p.waitFor("2 ready workers", 20*time.Second, nReady(2))
	if code, out := tenderHealth(t, p.Control); code != 0 || out != "healthy: 2 of 2 workers ready" {
		t.Errorf("tender health before SIGTERM: %d %q", code, out)
	}
	start := time.Now()
	p.Signal(syscall.SIGTERM)
	eventually(t, 5*time.Second, "tender health to say stopping", func() bool {
		code, _ := tenderHealth(t, p.Control)
		return code == 1
	})
	if resp, err := http.Get("http://" + admin + "/healthz"); err != nil || resp.StatusCode != 503 {
		t.Errorf("/healthz during the shutdown delay: %v %v, want 503", resp, err)
	} else {
		resp.Body.Close()
	}
	for time.Since(start) < time.Second {
		if body := httpGet(t, "http://"+front+"/"); body == "" {
			t.Fatalf("a request %v after SIGTERM, within the shutdown delay, got nothing", time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := p.Wait(20 * time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Errorf("tender stopped %v after SIGTERM, within the shutdown delay", took)
	}
}

// A worker whose start never returns (its exec stuck on a FUSE path whose server never
// answers) is timed out like one that never becomes ready, and a SIGTERM stops the pool at
// once: tender signals the stuck child through the pid the kernel gave it.
func TestPoolStuckStartIsTimedOut(t *testing.T) {
	t.Parallel()
	dir := hangingMount(t)
	p := startPool(t, []string{"TENDER_WORKERS=2", "TENDER_START_TIMEOUT=1s", "TENDER_STOP_TIMEOUT=3s"}, "--", filepath.Join(dir, "app"))
	if !p.logged("worker did not become ready in time: stopping it") {
		t.Fatal("the stuck start was not timed out")
	}
	start := time.Now()
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Errorf("exit status %d, want 0 after a graceful stop", code)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the stop took %v, past its 3s", took)
	}
}
