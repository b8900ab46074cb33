package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// appInfo is what `testapp info` reports about itself.
type appInfo struct {
	Pid         int               `json:"pid"`
	Fds         []int             `json:"fds"`
	Status      map[string]string `json:"status"`
	OOMScoreAdj int               `json:"oom_score_adj"`
	Env         []string          `json:"env"`
}

func readInfo(t *testing.T, path string) appInfo {
	t.Helper()
	var info appInfo
	must(t, json.Unmarshal([]byte(waitFile(t, path, 20*time.Second)), &info))
	return info
}

func TestContainerOOMScores(t *testing.T) {
	t.Parallel()
	score := 500
	b := newBundle(t, dockerDefaultCaps, []string{"TENDER_OOM_SCORE_ADJ=100"}, "--", "/testapp", "info", "/out/info")
	b.Spec.Process.OOMScoreAdj = &score
	r := b.run(t)
	info := readInfo(t, filepath.Join(b.Out, "info"))
	tender := r.TenderPid()
	eventually(t, 5*time.Second, "tender at 100", func() bool { return oomScore(t, tender) == 100 })
	if info.OOMScoreAdj != 500 {
		t.Errorf("the app's oom_score_adj is %d, want the container's 500", info.OOMScoreAdj)
	}
	if fmt := info.Fds; len(fmt) != 3 {
		t.Errorf("the app has fds %v, want 0, 1 and 2", info.Fds)
	}
	if info.Status["SigBlk"] != "0000000000000000" || info.Status["SigIgn"] != "0000000000000000" {
		t.Errorf("the app's SigBlk %s SigIgn %s, want both empty", info.Status["SigBlk"], info.Status["SigIgn"])
	}
	r.Signal(syscall.SIGTERM)
	r.Wait(20 * time.Second)
}

func TestContainerAppUser(t *testing.T) {
	t.Parallel()
	b := newBundle(t, dockerDefaultCaps, []string{"TENDER_APP_USER=app"}, "--", "/testapp", "info", "/out/info")
	r := b.run(t)
	info := readInfo(t, filepath.Join(b.Out, "info"))
	for k, want := range map[string]string{
		"Uid": "1000\t1000\t1000\t1000", "Gid": "1000\t1000\t1000\t1000", "Groups": "50", "CapEff": capMask(),
	} {
		if info.Status[k] != want {
			t.Errorf("the app's %s is %q, want %q", k, info.Status[k], want)
		}
	}
	for _, kv := range []string{"HOME=/home/app", "USER=app", "LOGNAME=app"} {
		if !slices.Contains(info.Env, kv) {
			t.Errorf("the app's environment lacks %s: %v", kv, info.Env)
		}
	}
	// tender itself stays root with the container's capabilities.
	if st := procStatus(t, r.TenderPid()); !strings.HasPrefix(st["Uid"], "0\t") {
		t.Errorf("tender's Uid is %q, want root", st["Uid"])
	}
	r.Signal(syscall.SIGTERM)
	r.Wait(20 * time.Second)
}

// tender as a non-root USER with no capabilities at all still reaps, forwards, starts apps and
// passes the status on, and `tender probe` says what it cannot do.
func TestContainerNonRootTender(t *testing.T) {
	asUser := func(b *Bundle) *Bundle {
		b.Spec.Process.User = specs.User{UID: 1000, GID: 1000}
		b.Spec.Process.Capabilities = &specs.LinuxCapabilities{}
		return b
	}
	t.Run("signals and orphans", func(t *testing.T) {
		t.Parallel()
		b := asUser(newBundle(t, nil, nil, "--", "/testapp", "signals", "/out/signals"))
		r := b.run(t)
		report := filepath.Join(b.Out, "signals")
		waitReady(t, report)
		r.Signal(syscall.SIGUSR2)
		waitSignals(t, report, []int{int(syscall.SIGUSR2)})
		if st := procStatus(t, r.TenderPid()); st["CapEff"] != capMask() || !strings.HasPrefix(st["Uid"], "1000\t") {
			t.Errorf("tender runs with Uid %q CapEff %s, want 1000 and none", st["Uid"], st["CapEff"])
		}
		r.Signal(syscall.SIGTERM)
		if code := r.Wait(20 * time.Second); code != 0 {
			t.Errorf("exit status %d, want 0", code)
		}
	})
	t.Run("orphans", func(t *testing.T) {
		t.Parallel()
		b := asUser(newBundle(t, nil, nil, "--", "/testapp", "orphans", "50", "/out/done"))
		r := b.run(t)
		waitFile(t, filepath.Join(b.Out, "done"), 20*time.Second)
		tender := r.TenderPid()
		eventually(t, 5*time.Second, "only the app below tender", func() bool { return len(descendants(tender)) == 1 })
		r.Signal(syscall.SIGTERM)
		r.Wait(20 * time.Second)
	})
	t.Run("exit status", func(t *testing.T) {
		t.Parallel()
		r := asUser(newBundle(t, nil, nil, "--", "/testapp", "exit", "9")).run(t)
		if code := r.Wait(20 * time.Second); code != 9 {
			t.Errorf("exit status %d, want 9", code)
		}
	})
	t.Run("probe", func(t *testing.T) {
		t.Parallel()
		r := asUser(newBundle(t, nil, nil, "probe")).run(t)
		if code := r.Wait(20 * time.Second); code != 0 {
			t.Fatalf("probe exit status %d\n%s", code, r.Stderr)
		}
		out := r.Stdout.String()
		for _, want := range []string{"PID 1          yes", "capabilities   none", "cannot lower oom_score_adj below", "uid 1000, gid 1000", "TENDER_APP_USER would need CAP_SETUID"} {
			if !strings.Contains(out, want) {
				t.Errorf("probe does not say %q:\n%s", want, out)
			}
		}
	})
}

// A real OOM kill: in a container with a small memory limit, an app that allocates without
// bound is the process the kernel kills; tender survives and says so. Raising the apps' score
// (TENDER_APP_OOM_SCORE_ADJ=+500) makes the kernel's choice certain where tender cannot lower
// its own.
func TestContainerOOMKill(t *testing.T) {
	t.Parallel()
	limit := int64(64 << 20)
	b := newBundle(t, dockerDefaultCaps, []string{"TENDER_APP_OOM_SCORE_ADJ=+500"}, "--", "/testapp", "alloc", "4")
	b.Spec.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &limit}}
	r := b.run(t)
	code := r.Wait(60 * time.Second)
	if code != 128+int(syscall.SIGKILL) {
		t.Errorf("exit status %d, want 137 (the app killed by SIGKILL)", code)
	}
	if !strings.Contains(r.Stderr.String(), "the app was killed by the OOM killer") {
		t.Errorf("tender did not report the OOM kill (or did not survive it):\n%s", r.Stderr)
	}
}

// A pool in a container with Docker's default capabilities: SIGTERM stops it within the stop
// timeout, a worker that ignores SIGTERM getting SIGKILL. (The bundle shares the host's network:
// runc, unlike Docker, does not bring up the loopback of a new network namespace.)
func TestContainerPoolGracefulStop(t *testing.T) {
	t.Parallel()
	b := newBundle(t, dockerDefaultCaps, []string{"TENDER_WORKERS=3", "TENDER_STOP_TIMEOUT=2s", "TENDER_KILL_GRACE=5s"},
		"--", "/testapp", "serve", "-ignore-term", "-record", "/out/starts")
	b.Spec.Linux.Namespaces = slices.DeleteFunc(b.Spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
		return ns.Type == specs.NetworkNamespace
	})
	r := b.run(t)
	eventually(t, 20*time.Second, "3 ready workers", func() bool { return strings.Count(r.Stderr.String(), "worker ready") == 3 })
	start := time.Now()
	r.Signal(syscall.SIGTERM)
	code := r.Wait(20 * time.Second)
	if took := time.Since(start); code != 0 || took > 2500*time.Millisecond {
		t.Errorf("exit status %d after %v, want 0 within the 2s stop timeout", code, took)
	}
	if !strings.Contains(r.Stderr.String(), "did not stop on its stop signal; sending SIGKILL") {
		t.Errorf("no SIGKILL for the workers ignoring SIGTERM:\n%s", r.Stderr)
	}
	if n := len(readRecords(t, filepath.Join(b.Out, "starts"))); n != 3 {
		t.Errorf("%d worker starts, want 3", n)
	}
}

// In pool mode a worker that the OOM killer ends is reported as such and replaced, and tender
// itself lives on: the raised apps' score makes the kernel's choice deterministic here.
func TestContainerPoolOOMKillReplacesTheWorker(t *testing.T) {
	t.Parallel()
	limit := int64(128 << 20)
	port := freePort(t)
	b := newBundle(t, dockerDefaultCaps, []string{"TENDER_WORKERS=2", "TENDER_LISTEN=127.0.0.1:" + port, "TENDER_APP_OOM_SCORE_ADJ=+500"},
		"--", "/testapp", "serve")
	b.Spec.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &limit}}
	b.Spec.Linux.Namespaces = slices.DeleteFunc(b.Spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
		return ns.Type == specs.NetworkNamespace
	})
	r := b.run(t)
	eventually(t, 20*time.Second, "2 ready workers", func() bool { return strings.Count(r.Stderr.String(), "worker ready") == 2 })

	// The request dies with its worker, and, being idempotent, goes again, to die with the
	// next: the third worker it kills makes it a 502, not a fourth (it killed a replacement
	// every half second for TENDER_QUEUE_TIMEOUT).
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get("http://127.0.0.1:" + port + "/grow?mb=512")
	if err != nil {
		t.Fatalf("GET /grow: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "3 workers closed the connection or died") {
		t.Errorf("GET /grow?mb=512 in a 128 MiB container: %d %q, want the 502 after three workers died", resp.StatusCode, body)
	}
	const kills = 3
	eventually(t, 20*time.Second, "the killed workers replaced", func() bool {
		return strings.Count(r.Stderr.String(), "worker ready") >= 2+kills
	})
	if n := strings.Count(r.Stderr.String(), "worker killed by the OOM killer"); n != kills {
		t.Errorf("tender reported %d OOM kills, want %d, one for each worker the request was sent to:\n%s", n, kills, r.Stderr)
	}
	if r.Exited() {
		t.Fatalf("tender exited after its worker's OOM kill:\n%s", r.Stderr)
	}
	r.Signal(syscall.SIGTERM)
	if code := r.Wait(20 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// TENDER_WORKERS=auto runs one worker per CPU the container may use: its CPU quota rounded up
// (half a CPU here, on a machine with more), not the machine's CPUs.
func TestContainerWorkersAuto(t *testing.T) {
	t.Parallel()
	quota, period := int64(50000), uint64(100000)
	b := newBundle(t, dockerDefaultCaps, []string{"TENDER_WORKERS=auto"}, "--", "/testapp", "serve")
	b.Spec.Linux.Resources = &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: &quota, Period: &period}}
	b.Spec.Linux.Namespaces = slices.DeleteFunc(b.Spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
		return ns.Type == specs.NetworkNamespace
	})
	r := b.run(t)
	eventually(t, 20*time.Second, "a ready worker", func() bool { return strings.Contains(r.Stderr.String(), "worker ready") })
	if !r.logged("TENDER_WORKERS=auto: one worker per CPU: workers=1") || !strings.Contains(r.Stderr.String(), "CPU quota, 0.50 CPUs") {
		t.Errorf("tender did not say it runs 1 worker for the quota of 0.5 CPU")
	}
	r.Signal(syscall.SIGTERM)
	if code := r.Wait(20 * time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if n := strings.Count(r.Stderr.String(), "worker ready"); n != 1 {
		t.Errorf("%d workers ready, want 1", n)
	}
}

// A malformed uid or gid in the container's /etc/passwd or /etc/group stops tender before
// anything starts, with status 2 and the line named: `neg:x:-1:-1` used to run the app as root
// with every capability (the parse error was dropped, and the id read as 0).
func TestContainerMalformedAppUserIsRefused(t *testing.T) {
	for _, tc := range []struct{ user, want string }{
		{"neg", `/etc/passwd line 3: uid "-1" is not a number from 0 to 4294967294`},
		{"app:neg", `/etc/group line 4: gid "-1" is not a number from 0 to 4294967294`},
		{"app:huge", `/etc/group line 5: gid "4294967295" is not a number from 0 to 4294967294`},
	} {
		t.Run(tc.user, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t, dockerDefaultCaps, []string{"TENDER_APP_USER=" + tc.user}, "--", "/testapp", "info", "/out/info", "exit")
			appendFile(t, filepath.Join(b.Dir, "rootfs/etc/passwd"), "neg:x:-1:-1:neg:/:/bin/sh\n")
			appendFile(t, filepath.Join(b.Dir, "rootfs/etc/group"), "neg:x:-1:\nhuge:x:4294967295:\n")
			r := b.run(t)
			if code := r.Wait(20 * time.Second); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			if !strings.Contains(r.Stderr.String(), tc.want) {
				t.Errorf("the error does not name the line: want %q in\n%s", tc.want, r.Stderr)
			}
			if _, err := os.Stat(filepath.Join(b.Out, "info")); err == nil {
				t.Errorf("the app ran: %s", readInfo(t, filepath.Join(b.Out, "info")).Status["Uid"])
			}
		})
	}
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString(text)
	must(t, err)
	must(t, f.Close())
}

// Quiet by default: in a container as Docker makes it by default (its capabilities, no
// CAP_SYS_RESOURCE) and read-only (no /run, no /tmp to write in), tender says that OOM
// protection is unavailable in one short line, which points to tender probe for the rest, and
// that it has no control socket in one line. They used to be a 420-character line and a
// warning spread over five lines.
func TestContainerQuietByDefault(t *testing.T) {
	t.Parallel()
	b := newBundle(t, dockerDefaultCaps, nil, "--", "/testapp", "sleep", "1")
	b.Spec.Mounts = slices.DeleteFunc(b.Spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/tmp" })
	r := b.run(t)
	if code := r.Wait(20 * time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	lines := strings.Split(strings.TrimSuffix(r.Stderr.String(), "\n"), "\n")
	for _, line := range lines {
		if !regexpMatch(`^\d{4}-\d\d-\d\dT\S+ \[(INFO|WARN)\] `, line) {
			t.Errorf("a line that is not a log line of its own: %q", line)
		}
	}
	var oom, control string
	for _, line := range lines {
		if strings.Contains(line, "OOM protection") {
			oom = line
		}
		if strings.Contains(line, "control socket") {
			control = line
		}
	}
	if len(oom) > 160 || !strings.Contains(oom, "asked=-1000 got=0") || !strings.Contains(oom, "tender probe") {
		t.Errorf("want one short OOM line (at most 160 characters) with asked=-1000 got=0 and a pointer to tender probe, got %d: %q", len(oom), oom)
	}
	for _, want := range []string{"/run/tender/control.sock", "/tmp/tender-0/control.sock", "read-only file system"} {
		if !strings.Contains(control, want) {
			t.Errorf("the control socket's line does not say %q: %q", want, control)
		}
	}
	if len(lines) > 2 {
		t.Errorf("%d lines, want the two above only:\n%s", len(lines), r.Stderr)
	}
}
