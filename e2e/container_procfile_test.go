package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/tenderinit/tender/apps"
)

// procfileBundle is a bundle with Docker's default capabilities, the host's network (runc
// does not bring up the loopback of a new network namespace) and a control socket in
// /out/control, that runs tender over the Procfile text, written to /Procfile in its rootfs.
// The rootfs has no /bin/sh: a distroless image.
func procfileBundle(t *testing.T, procfile string, env ...string) *Bundle {
	t.Helper()
	b := newBundle(t, dockerDefaultCaps, append(env, "TENDER_CONTROL=/out/control/control.sock"), "--procfile", "/Procfile")
	must(t, os.WriteFile(filepath.Join(b.Dir, "rootfs", "Procfile"), []byte(procfile), 0o644))
	must(t, os.Mkdir(filepath.Join(b.Out, "control"), 0o700)) // /out is everyone's: no place for a socket
	b.Spec.Linux.Namespaces = slices.DeleteFunc(b.Spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
		return ns.Type == specs.NetworkNamespace
	})
	return b
}

// A Procfile in a container without a shell: the release runs first and alone, then web (3,
// behind the balancer) and worker (2), whose $PORT and ${TENDER_PROCESS_TYPE} tender expands
// without a shell; every line of output is labelled; SIGTERM stops every type, with 0.
func TestContainerProcfile(t *testing.T) {
	t.Parallel()
	front := "127.0.0.1:" + freePort(t)
	b := procfileBundle(t, `release: /testapp note -exit /out/notes migrate
web: /testapp serve -say "web $TENDER_WORKER_ID up"
worker: /testapp note /out/notes $PORT ${TENDER_PROCESS_TYPE}.$TENDER_WORKER_ID
`, "TENDER_FORMATION=web=3,worker=2", "TENDER_LISTEN="+front, "TENDER_MIN_UPTIME=300ms")
	r := b.run(t)
	p := &Pool{Run: r, Control: filepath.Join(b.Out, "control", "control.sock"), Dir: b.Out}
	p.waitFor("3 web ready, 2 workers running", 30*time.Second, func(st apps.Status) bool {
		return inState(st, "web", "ready") == 3 && inState(st, "worker", "running") == 2 && len(st.Workers) == 5
	})
	notes := readNotes(t, filepath.Join(b.Out, "notes"))
	release, workers := notesOf(notes, "start", "release"), notesOf(notes, "start", "worker")
	if len(release) != 1 || len(workers) != 2 || !slices.Equal(release[0].Args, []string{"migrate"}) || release[0].ID != "0" {
		t.Fatalf("notes %+v: want the release's, then 2 workers'", notes)
	}
	for _, n := range workers {
		if n.At < release[0].At {
			t.Errorf("worker %s started before the release phase", n.ID)
		}
		if want := []string{n.Port, "worker." + n.ID}; !slices.Equal(n.Args, want) || n.Port == "" {
			t.Errorf("worker %s has arguments %q, want %q", n.ID, n.Args, want)
		}
	}
	for i := 0; i < 6; i++ {
		if body := httpGet(t, "http://"+front+"/"); len(strings.Fields(body)) != 3 {
			t.Fatalf("the front answered %q", body)
		}
	}
	for _, want := range []string{"web.0    | web 0 up", "web.1    | web 1 up", "web.2    | web 2 up"} {
		if !strings.Contains(r.Stderr.String(), want) {
			t.Errorf("the output has no line %q:\n%s", want, r.Stderr)
		}
	}
	r.stopsWith0()
	if terms := notesOf(readNotes(t, filepath.Join(b.Out, "notes")), "term", "worker"); len(terms) != 2 {
		t.Errorf("%d workers noted SIGTERM, want 2", len(terms))
	}
}

// In a container without /bin/sh, a Procfile command that needs a shell cannot run: its type
// fails with 127, in a message that says so, and tender exits 127. A release phase that fails
// ends tender with its status, and nothing else starts.
func TestContainerProcfileWithoutAShell(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, procfile string
		want           int
		log            string
	}{
		{"a shell command", "web: /testapp serve\nworker: /testapp note /out/notes && echo done\n", 127,
			"the command of process type worker needs a shell (it uses &&), and there is none: stat /bin/sh: no such file or directory"},
		{"a failing release", "release: /testapp exit 4\nworker: /testapp note /out/notes\n", 4,
			"release phase failed: nothing else starts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := procfileBundle(t, tc.procfile)
			r := b.run(t)
			if code := r.Wait(20 * time.Second); code != tc.want {
				t.Errorf("exit status %d, want %d", code, tc.want)
			}
			if !strings.Contains(r.Stderr.String(), tc.log) {
				t.Errorf("the log does not say %q:\n%s", tc.log, r.Stderr)
			}
			if _, err := os.Stat(filepath.Join(b.Out, "notes")); err == nil {
				t.Error("the worker type started")
			}
		})
	}
}
