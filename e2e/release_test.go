package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenderinit/tender/apps"
)

// releaseProcfile is a Procfile whose release type runs the shell code release, after which
// web and worker are to start: web records its starts in DIR/web, worker notes in DIR/notes.
func releaseProcfile(t *testing.T, dir, release string) string {
	t.Helper()
	return writeAppFile(t, dir, "Procfile", "release: "+release+"\n"+
		"web: "+bin.testapp+" serve -record "+filepath.Join(dir, "web")+"\n"+
		"worker: "+bin.testapp+" note "+filepath.Join(dir, "notes")+"\n")
}

// nothingElseStarted checks that neither web nor worker ever started.
func nothingElseStarted(t *testing.T, dir string) {
	t.Helper()
	for _, f := range []string{"web", "notes"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s started, though the release phase did not succeed", f)
		}
	}
}

// The release type runs first, alone, with its own PORT, TENDER_WORKER_ID and
// TENDER_PROCESS_TYPE: while it runs, status shows it alone and tender is not healthy; once
// it exits 0, web and worker start.
func TestProcfileReleaseRunsFirst(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	goOn := filepath.Join(dir, "go-on")
	note := filepath.Join(dir, "release")
	procfile := releaseProcfile(t, dir, `echo "$TENDER_PROCESS_TYPE.$TENDER_WORKER_ID $PORT" > `+note+`.tmp && mv `+note+`.tmp `+note+
		`; while [ ! -e `+goOn+` ]; do sleep 0.02; done`)
	p := startPool(t, []string{"TENDER_MIN_UPTIME=200ms", "TENDER_LISTEN=127.0.0.1:" + freePort(t)}, "--procfile", procfile)
	got := waitFile(t, note, 10*time.Second)
	if f := strings.Fields(got); len(f) != 2 || f[0] != "release.0" || f[1] == "" {
		t.Errorf("the release process had %q, want release.0 and a PORT", got)
	}
	st := p.waitFor("the release row", 5*time.Second, func(st apps.Status) bool { return len(st.Workers) > 0 })
	if len(st.Workers) != 1 || st.Workers[0].Type != "release" || st.Workers[0].State != "running" {
		t.Errorf("status during the release phase: %+v, want the release process alone, running", st.Workers)
	}
	if code, out := tenderHealth(t, p.Control); code != 1 || out != "unhealthy: the release phase is running" {
		t.Errorf("tender health during the release phase: %d %q", code, out)
	}
	nothingElseStarted(t, dir)

	must(t, os.WriteFile(goOn, nil, 0o644))
	p.waitFor("web ready and worker running", 20*time.Second, func(st apps.Status) bool {
		return inState(st, "web", "ready") == 1 && inState(st, "worker", "running") == 1 && len(st.Workers) == 2
	})
	if !p.logged("release phase done: starting the other process types") {
		t.Errorf("the log does not say the release phase is done:\n%s", p.Stderr)
	}
	p.stopsWith0()
}

// A release phase that fails ends tender with its status (128+N when signal N killed it), and
// nothing else starts; one that SIGTERM stops ends tender with its own status too.
func TestProcfileReleaseFailureStopsEverything(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, release string
		sigterm       bool
		want          int
		log           string
	}{
		{"exits 3", "echo migration failed >&2; exit 3", false, 3, `release phase failed: nothing else starts: id=0 type=release`},
		{"killed by SIGUSR1", "kill -USR1 $$", false, 128 + int(syscall.SIGUSR1), `status="killed by SIGUSR1"`},
		{"stopped by SIGTERM", "trap 'exit 7' TERM; touch $0.running; while :; do sleep 0.02; done", true, 7, `release phase stopped`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			procfile := releaseProcfile(t, dir, strings.ReplaceAll(tc.release, "$0", filepath.Join(dir, "release")))
			p := startPool(t, nil, "--procfile", procfile)
			if tc.sigterm {
				waitFile(t, filepath.Join(dir, "release.running"), 10*time.Second)
				p.Signal(syscall.SIGTERM)
			}
			if code := p.Wait(15 * time.Second); code != tc.want {
				t.Errorf("exit status %d, want %d", code, tc.want)
			}
			if !strings.Contains(p.Stderr.String(), tc.log) {
				t.Errorf("the log does not say %q:\n%s", tc.log, p.Stderr)
			}
			nothingElseStarted(t, dir)
		})
	}
}
