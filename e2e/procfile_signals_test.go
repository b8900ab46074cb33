package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenderinit/tender/apps"
)

// With a Procfile, SIGUSR1 reaches every process of every type, SIGTTIN and SIGTTOU scale web
// alone, and SIGHUP rolls every type.
func TestProcfileSignals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sigs := filepath.Join(dir, "signals")
	procfile := writeAppFile(t, dir, "Procfile", "web: "+bin.testapp+" serve -signals "+sigs+"\n"+
		"worker: "+bin.testapp+" serve -no-listen -signals "+sigs+"\n")
	p := startPool(t, []string{"TENDER_FORMATION=web=2,worker=2", "TENDER_MIN_UPTIME=200ms"}, "--procfile", procfile)
	upAsFormed := func(web int) func(apps.Status) bool {
		return func(st apps.Status) bool {
			return inState(st, "web", "ready") == web && inState(st, "worker", "running") == 2 && len(st.Workers) == web+2
		}
	}
	st := p.waitFor("2 web ready, 2 workers running", 20*time.Second, upAsFormed(2))

	p.Signal(syscall.SIGUSR1)
	eventually(t, 5*time.Second, "SIGUSR1 in every process of both types", func() bool {
		b, _ := os.ReadFile(sigs)
		return strings.Count(string(b), " 10\n") == 4
	})

	workers := pidsOf(st, "worker")
	for _, step := range []struct {
		sig syscall.Signal
		web int
	}{{syscall.SIGTTIN, 3}, {syscall.SIGTTOU, 2}} {
		p.Signal(step.sig)
		st = p.waitFor("web scaled by "+step.sig.String(), 10*time.Second, upAsFormed(step.web))
		if got := pidsOf(st, "worker"); !slices.Equal(got, workers) {
			t.Errorf("%v touched the workers: %v, were %v", step.sig, got, workers)
		}
	}

	p.Signal(syscall.SIGHUP)
	p.waitFor("every process of both types replaced", 20*time.Second, func(now apps.Status) bool {
		return upAsFormed(2)(now) && allNew(st, now)
	})
	p.stopsWith0()
}

// A process of a type that serves no port is never waited for on one, nor timed out for not
// listening: it is running once it has stayed up (TENDER_MIN_UPTIME, here past the start
// timeout).
func TestProcfileTypeWithoutAPortIsRunningOnceUp(t *testing.T) {
	t.Parallel()
	procfile := writeAppFile(t, t.TempDir(), "Procfile", "worker: "+bin.testapp+" serve -no-listen\nclock: "+bin.testapp+" serve -no-listen\n")
	p := startPool(t, []string{"TENDER_START_TIMEOUT=300ms", "TENDER_MIN_UPTIME=1s"}, "--procfile", procfile)
	st := p.waitFor("the worker and the clock running", 20*time.Second, func(st apps.Status) bool {
		return inState(st, "worker", "running") == 1 && inState(st, "clock", "running") == 1
	})
	for _, w := range st.Workers {
		if w.Restarts != 0 || w.LastFailure != nil {
			t.Errorf("%s.%d was restarted or failed: %+v", w.Type, w.ID, w)
		}
	}
	if code, out := tenderHealth(t, p.Control); code != 0 || out != "healthy: every process type has a worker up (worker, clock)" {
		t.Errorf("tender health: %d %q", code, out)
	}
	p.stopsWith0()
}

// A process that sends READY=1 is ready, and from then on its type's processes are awaited by
// READY=1 within TENDER_START_TIMEOUT, not by their uptime: a rolling restart onto one that no
// longer says it (here while a file exists) times it out and keeps the old one.
func TestProcfileTypeThatSendsReadyIsAwaitedByIt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	silent := filepath.Join(dir, "silent")
	procfile := writeAppFile(t, dir, "Procfile", "notifier: [ -e "+silent+" ] && exec "+bin.testapp+" serve -no-listen; exec "+
		bin.testapp+" serve -no-listen -notify\n")
	// A silent process would count as running after 500ms, were its uptime to count.
	p := startPool(t, []string{"TENDER_START_TIMEOUT=1500ms", "TENDER_MIN_UPTIME=500ms", "TENDER_MAX_RESTARTS=1",
		"TENDER_RESTART_DELAY=10ms"}, "--procfile", procfile)
	st := p.waitFor("the notifier ready", 20*time.Second, func(st apps.Status) bool { return inState(st, "notifier", "ready") == 1 })
	if !p.logged("worker ready: id=0 type=notifier") || !p.logged("via=notify") {
		t.Errorf("the notifier was not ready by READY=1:\n%s", p.Stderr)
	}
	must(t, os.WriteFile(silent, nil, 0o644))
	if out, err := p.tenderCLI("restart", "notifier"); err != nil {
		t.Fatalf("tender restart notifier: %v %s", err, out)
	}
	if !p.logged("worker did not become ready in time: stopping it: id=0 type=notifier") ||
		!p.logged("the replacement of a worker cannot start; keeping the old one: id=0 type=notifier") {
		t.Fatalf("the silent replacement was not timed out and given up:\n%s", p.Stderr)
	}
	now := p.waitFor("the old notifier alone", 5*time.Second, func(now apps.Status) bool { return len(now.Workers) == 1 })
	if now.Workers[0].Pid != st.Workers[0].Pid || now.Workers[0].State != "ready" {
		t.Errorf("the notifier is %+v, want the old one (pid %d), ready", now.Workers[0], st.Workers[0].Pid)
	}
	p.stopsWith0()
}
