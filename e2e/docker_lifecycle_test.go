package e2e

// The lifecycle cases of the Docker suite: HEALTHCHECK through tender health, and
// TENDER_SHUTDOWN_DELAY under load during docker stop. They build on docker_helpers_test.go and
// docker_test.go (loadAt).

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// execCode runs a command in the container and returns its exit code and output.
func (c *Container) execCode(args ...string) (int, string) {
	c.t.Helper()
	out, err := c.Exec(args...)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out
	case errors.As(err, &exit):
		return exit.ExitCode(), out + err.Error()
	default:
		c.t.Fatalf("docker exec %v: %v", args, err)
		return -1, ""
	}
}

// waitHealth waits for Docker's health status of the container (starting, healthy, unhealthy).
func (c *Container) waitHealth(want string, timeout time.Duration) {
	c.t.Helper()
	var got string
	for deadline := time.Now().Add(timeout); ; time.Sleep(200 * time.Millisecond) {
		if got = c.inspect("{{.State.Health.Status}}"); got == want {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("container %s is %q after %v, want %q; last checks: %s", c.Name, got, timeout, want,
				c.inspect("{{range .State.Health.Log}}{{.ExitCode}}: {{.Output}}; {{end}}"))
		}
	}
}

// HEALTHCHECK CMD ["tender", "health"] in a FROM scratch image (no curl there): a running app
// and a pool with a ready worker go healthy; a pool whose workers never get ready goes
// unhealthy, and tender health says why in one line with exit status 1.
func TestDockerHealthcheck(t *testing.T) {
	t.Parallel()
	needDocker(t)
	image := buildImage(t, `HEALTHCHECK --interval=1s --timeout=5s --retries=2 CMD ["/usr/local/bin/tender", "health"]`)

	t.Run("single mode", func(t *testing.T) {
		t.Parallel()
		c := runContainer(t, image, nil, "testapp", "sleep", "1000")
		c.waitHealth("healthy", 30*time.Second)
		c.stopWithin(143)
	})

	t.Run("a pool with ready workers", func(t *testing.T) {
		t.Parallel()
		c := runContainer(t, image, []string{"--env", "TENDER_WORKERS=2"}, "testapp", "serve")
		c.waitHealth("healthy", 30*time.Second)
		if code, out := c.execCode("tender", "health"); code != 0 {
			t.Errorf("tender health: exit status %d, want 0: %s", code, out)
		}
		c.stopWithin(0)
	})

	t.Run("a pool with no ready worker", func(t *testing.T) {
		t.Parallel()
		// The workers wait an hour before they listen: none is ever ready.
		c := runContainer(t, image, []string{"--env", "TENDER_WORKERS=2"}, "testapp", "serve", "-delay", "1h")
		c.waitHealth("unhealthy", 30*time.Second)
		code, out := c.execCode("tender", "health")
		if code != 1 {
			t.Errorf("tender health with no ready worker: exit status %d, want 1: %s", code, out)
		}
		if why := strings.TrimSpace(c.inspect("{{(index .State.Health.Log 0).Output}}")); why == "" || strings.Contains(why, "\n") {
			t.Errorf("tender health said %q, want one line saying why", why)
		}
		c.stopWithin(0)
	})
}

// TENDER_SHUTDOWN_DELAY during docker stop: tender reports not ready at once, the published
// front keeps serving with no failed request for the delay, then the graceful stop runs and
// the container exits 0 before Docker's SIGKILL. In single mode the app's SIGTERM comes after
// the delay.
func TestDockerShutdownDelay(t *testing.T) {
	t.Parallel()
	needDocker(t)
	image := buildImage(t)
	const delay = 4 * time.Second // plus the stop itself, well within docker stop's 10 s

	t.Run("pool under load", func(t *testing.T) {
		t.Parallel()
		c, _ := runFront(t, image, 2, []string{"--env", "TENDER_SHUTDOWN_DELAY=" + delay.String()})
		ok, failed, errs, stopLoad := loadAt(c.Addr("8080"), 4)
		servedAtLeast(t, ok, 21, 10*time.Second) // the load flows

		type result struct {
			took time.Duration
			err  error
		}
		stopped := make(chan result, 1)
		start := time.Now()
		go func() {
			_, err := dockerCmd("stop", c.Name)
			stopped <- result{time.Since(start), err}
		}()
		// tender health turns to not ready as soon as SIGTERM comes: the orchestrator's cue to
		// route no more traffic here.
		eventually(t, delay/2, "tender health to report not ready", func() bool {
			code, _ := c.execCode("tender", "health")
			return code == 1
		})
		// docker exec fails with 1 too once the container is gone: it must still run.
		if running := c.inspect("{{.State.Running}}"); running != "true" {
			t.Fatalf("the container stopped within the %v delay", delay)
		}
		atTerm := ok.Load()
		servedAtLeast(t, ok, atTerm+21, delay/4) // after SIGTERM
		// Within the delay: after it the front closes, as it must.
		close(stopLoad)
		for e := range errs {
			t.Errorf("a request failed: %s", e)
		}
		if failed.Load() != 0 {
			t.Errorf("%d requests served (%d after SIGTERM), %d failed", ok.Load(), ok.Load()-atTerm, failed.Load())
		}
		r := <-stopped
		if r.err != nil {
			t.Fatal(r.err)
		}
		if code := c.inspect("{{.State.ExitCode}}"); code != "0" || r.took < delay || r.took > 9*time.Second {
			t.Errorf("docker stop: exit code %s after %v, want 0 after the %v delay and before Docker's SIGKILL", code, r.took.Round(time.Millisecond), delay)
		}
	})

	t.Run("single mode holds the signal back", func(t *testing.T) {
		t.Parallel()
		c := runContainer(t, image, []string{"--env", "TENDER_SHUTDOWN_DELAY=" + delay.String()}, "testapp", "signals", "/out/signals")
		report := filepath.Join(c.Out, "signals")
		waitReady(t, report)
		code, took := c.Stop()
		waitSignals(t, report, []int{15})
		if code != 0 || took < delay {
			t.Errorf("docker stop: exit code %d after %v, want the app's 0 after the %v delay", code, took.Round(time.Millisecond), delay)
		}
	})
}
