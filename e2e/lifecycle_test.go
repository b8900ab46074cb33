package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenderinit/tender/apps"
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
	// At least one request, however long the health checks above took.
	for served := 0; served == 0 || time.Since(start) < time.Second; served++ {
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
	stopsWithin(t, p.Run, 3*time.Second, "past its 3s")
}

// stopsWithin sends SIGTERM to r and checks that it ends with 0 within d; why says what a
// longer stop would mean.
func stopsWithin(t *testing.T, r *Run, d time.Duration, why string) {
	t.Helper()
	start := time.Now()
	r.Signal(syscall.SIGTERM)
	if code := r.Wait(d + 10*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0 after a graceful stop", code)
	}
	if took := time.Since(start); took > d {
		t.Errorf("the stop took %v: %s", took, why)
	}
}

// TENDER_STOP_SIGNAL=QUIT: workers that stop gracefully on QUIT (nginx, unicorn) and ignore
// SIGTERM get QUIT in a graceful stop, and no SIGKILL.
func TestPoolStopSignal(t *testing.T) {
	t.Parallel()
	signals := filepath.Join(t.TempDir(), "signals")
	p := startPool(t, []string{"TENDER_WORKERS=2", "TENDER_STOP_SIGNAL=QUIT", "TENDER_KILL_GRACE=5s", "TENDER_STOP_TIMEOUT=8s"},
		"--", bin.testapp, "serve", "-ignore-term", "-stop-on", "3", "-signals", signals)
	p.waitFor("2 ready workers", 20*time.Second, nReady(2))
	stopsWithin(t, p.Run, 4*time.Second, "the workers waited for SIGKILL")
	b, _ := os.ReadFile(signals)
	if got := strings.Count(string(b), " 3\n"); got != 2 {
		t.Errorf("%d workers got SIGQUIT, want 2:\n%s", got, b)
	}
	if strings.Contains(p.Stderr.String(), "sending SIGKILL") {
		t.Errorf("a worker got SIGKILL:\n%s", p.Stderr)
	}
}

// Workers due for recycling at once (each past TENDER_MAX_REQUESTS) are recycled one at a
// time: the container never holds more than one process beyond the pool's.
func TestPoolRecyclesOneAtATime(t *testing.T) {
	t.Parallel()
	front := "127.0.0.1:" + freePort(t)
	p := startPool(t, []string{"TENDER_WORKERS=4", "TENDER_LISTEN=" + front, "TENDER_MAX_REQUESTS=10"}, "--", bin.testapp, "serve")
	before := p.waitFor("4 ready workers", 20*time.Second, nReady(4))
	tender := p.TenderPid()
	most := 0
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				most = max(most, len(descendants(tender)))
			}
		}
	}()
	for range 60 { // every worker past its 10
		httpGet(t, "http://"+front+"/")
	}
	p.waitFor("4 new ready workers", 30*time.Second, func(st apps.Status) bool {
		return len(ready(st)) == 4 && allNew(before, st) && len(st.Workers) == 4
	})
	close(stop)
	<-sampled
	if most > 5 {
		t.Errorf("%d processes at once below tender, want at most 5: the recycles overlapped", most)
	}
	if n := strings.Count(p.Stderr.String(), "replacing worker"); n < 4 {
		t.Errorf("%d workers replaced, want 4", n)
	}
}

// Each worker's share of TENDER_MAX_REQUESTS is the limit plus up to the jitter; its share of
// TENDER_MAX_LIFETIME, the lifetime plus up to a tenth: workers started together are not all
// due together.
func TestPoolRecyclesAtTheLifetime(t *testing.T) {
	t.Parallel()
	p := startPool(t, []string{"TENDER_WORKERS=2", "TENDER_MAX_LIFETIME=1s"}, "--", bin.testapp, "serve")
	before := p.waitFor("2 ready workers", 20*time.Second, nReady(2))
	p.waitFor("2 new ready workers", 20*time.Second, func(st apps.Status) bool {
		return len(ready(st)) == 2 && allNew(before, st)
	})
	if !strings.Contains(p.Stderr.String(), "(TENDER_MAX_LIFETIME, 1") {
		t.Errorf("no recycle at the lifetime in the log:\n%s", p.Stderr)
	}
}

// With TENDER_WATCHDOG a worker gets WATCHDOG_USEC; one that pinged and fell silent is replaced,
// the other left alone. A worker that says STOPPING=1 is recycled, new before old.
func TestPoolWatchdogAndStopping(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	silent, stopping := filepath.Join(dir, "silent"), filepath.Join(dir, "stopping")
	p := startPool(t, []string{"TENDER_WORKERS=3", "TENDER_WATCHDOG=300ms"},
		"--", bin.testapp, "serve", "-watchdog", "-silent-when", silent, "-stopping-when", stopping)
	before := p.waitFor("3 ready workers", 20*time.Second, nReady(3))
	pidOf := func(st apps.Status, id int) int {
		for _, w := range st.Workers {
			if w.ID == id && w.State == string(apps.Ready) {
				return w.Pid
			}
		}
		return 0
	}
	time.Sleep(time.Second) // pinging all along: no one is replaced
	if st, _ := p.Status(); pidOf(st, 0) != pidOf(before, 0) || pidOf(st, 1) != pidOf(before, 1) {
		t.Fatalf("a pinging worker was replaced: %+v", st.Workers)
	}
	must(t, os.WriteFile(silent, []byte("0\n"), 0o644))
	p.waitFor("worker 0 replaced", 10*time.Second, func(st apps.Status) bool {
		return pidOf(st, 0) != 0 && pidOf(st, 0) != pidOf(before, 0)
	})
	if !p.logged("worker hung: replacing it") || !strings.Contains(p.Stderr.String(), "no WATCHDOG=1 for") {
		t.Errorf("the log does not say why worker 0 was replaced:\n%s", p.Stderr)
	}
	must(t, os.WriteFile(stopping, []byte("2\n"), 0o644))
	st := p.waitFor("worker 2 recycled", 10*time.Second, func(st apps.Status) bool {
		return pidOf(st, 2) != 0 && pidOf(st, 2) != pidOf(before, 2)
	})
	if pidOf(st, 1) != pidOf(before, 1) {
		t.Errorf("worker 1, silent about nothing, was replaced")
	}
	if !p.logged("worker asks to be recycled (STOPPING=1)") {
		t.Errorf("no STOPPING=1 in the log")
	}
}
