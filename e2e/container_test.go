package e2e

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The core PID-1 cases in a real OCI container, unprivileged (Docker's default capabilities)
// and privileged (every capability the machine has).
func TestInContainer(t *testing.T) {
	needRoot(t)
	capSets := []struct {
		name string
		caps []string
	}{{"default-caps", dockerDefaultCaps}, {"all-caps", allCaps(t)}}
	for _, cs := range capSets {
		t.Run(cs.name, func(t *testing.T) {
			t.Run("exit status", func(t *testing.T) {
				t.Parallel()
				for args, want := range map[string]int{"exit 7": 7, "killself 15": 143, "exit 0": 0} {
					b := newBundle(t, cs.caps, nil, append([]string{"--", "/testapp"}, strings.Fields(args)...)...)
					if got := b.run(t).Wait(20 * time.Second); got != want {
						t.Errorf("%s: exit status %d, want %d", args, got, want)
					}
				}
			})
			t.Run("command not found", func(t *testing.T) {
				t.Parallel()
				r := newBundle(t, cs.caps, nil, "--", "/no/such/app").run(t)
				if got := r.Wait(20 * time.Second); got != 127 {
					t.Errorf("exit status %d, want 127", got)
				}
			})
			t.Run("signals", func(t *testing.T) {
				t.Parallel()
				b := newBundle(t, cs.caps, nil, "--", "/testapp", "signals", "/out/signals")
				r := b.run(t)
				report := filepath.Join(b.Out, "signals")
				waitReady(t, report)
				sent := []int{int(syscall.SIGUSR1), int(syscall.SIGHUP), 40}
				for i, s := range sent {
					r.Signal(syscall.Signal(s))
					waitSignals(t, report, sent[:i+1])
				}
				r.Signal(syscall.SIGTERM)
				if code := r.Wait(20 * time.Second); code != 0 {
					t.Errorf("exit status %d, want 0", code)
				}
			})
			t.Run("orphans", func(t *testing.T) {
				t.Parallel()
				b := newBundle(t, cs.caps, nil, "--", "/testapp", "orphans", "100", "/out/done")
				r := b.run(t)
				waitFile(t, filepath.Join(b.Out, "done"), 20*time.Second)
				tender := r.TenderPid()
				eventually(t, 5*time.Second, "only the app below tender", func() bool {
					return len(descendants(tender)) == 1
				})
				r.Signal(syscall.SIGTERM)
				r.Wait(20 * time.Second)
			})
			t.Run("leftover", func(t *testing.T) {
				t.Parallel()
				b := newBundle(t, cs.caps, []string{"TENDER_KILL_GRACE=500ms"}, "--", "/testapp", "leave", "/out/pid", "5")
				r := b.run(t)
				start := time.Now()
				if code := r.Wait(20 * time.Second); code != 5 {
					t.Errorf("exit status %d, want 5", code)
				}
				// The kernel would kill the leftover anyway once PID 1 is gone; tender waiting
				// out the grace shows that it ended the leftover itself, SIGTERM then SIGKILL.
				if took := time.Since(start); took < 400*time.Millisecond || took > 3*time.Second {
					t.Errorf("took %v to end a leftover ignoring SIGTERM, want about the 500ms grace", took)
				}
			})
		})
	}
}
