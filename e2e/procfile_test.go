package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenderinit/tender/apps"
)

// note is a line that `testapp note` appends: a process of a Procfile type that serves no port.
type note struct {
	Event string   `json:"event"` // start, or term on SIGTERM
	At    int64    `json:"at"`
	Pid   int      `json:"pid"`
	Type  string   `json:"type"`
	ID    string   `json:"id"`
	Port  string   `json:"port"`
	Args  []string `json:"args"`
}

func readNotes(t *testing.T, path string) []note {
	t.Helper()
	b, _ := os.ReadFile(path)
	var out []note
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var n note
		if line != "" && json.Unmarshal([]byte(line), &n) == nil {
			out = append(out, n)
		}
	}
	return out
}

// notesOf are the notes of one event, by process type.
func notesOf(notes []note, event, typ string) []note {
	var out []note
	for _, n := range notes {
		if n.Event == event && n.Type == typ {
			out = append(out, n)
		}
	}
	return out
}

// stopsWith0 sends tender SIGTERM and checks that it stops gracefully, with 0.
func (r *Run) stopsWith0() {
	r.t.Helper()
	r.Signal(syscall.SIGTERM)
	if code := r.Wait(15 * time.Second); code != 0 {
		r.t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// writeAppFile writes a Procfile or an env file for a test.
func writeAppFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	must(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

// rowsOf are the status rows of one process type.
func rowsOf(st apps.Status, typ string) []apps.WorkerStatus {
	var out []apps.WorkerStatus
	for _, w := range st.Workers {
		if w.Type == typ {
			out = append(out, w)
		}
	}
	return out
}

// inState counts the rows of typ in state (ready for web, running for the types that serve no
// port).
func inState(st apps.Status, typ, state string) int {
	n := 0
	for _, w := range rowsOf(st, typ) {
		if w.State == state {
			n++
		}
	}
	return n
}

// pidsOf are the pids of the rows of typ.
func pidsOf(st apps.Status, typ string) []int {
	var out []int
	for _, w := range rowsOf(st, typ) {
		out = append(out, w.Pid)
	}
	slices.Sort(out)
	return out
}

// A Procfile of three types: web behind the balancer (3 processes), worker (2), and a type
// whose command needs a shell. Each process has its PORT, TENDER_WORKER_ID and
// TENDER_PROCESS_TYPE; worker's command has $PORT and ${NAME} expanded by tender, without a
// shell, from its own environment and the env file's variables; status, JSON and metrics say
// each worker's type; tender scale worker=3 and tender restart worker leave web alone; SIGTERM
// stops every type with SIGTERM (no SIGKILL, nothing left) and tender exits 0.
func TestProcfileRunsEveryType(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notes := filepath.Join(dir, "notes")
	envFile := writeAppFile(t, dir, "app.env", "# the app's settings\nTESTAPP="+bin.testapp+"\nexport NOTES="+notes+"\nGREETING=\"hello world\"\n")
	procfile := writeAppFile(t, dir, "Procfile", `# web, a job runner and a shell command
web: $TESTAPP serve -record `+filepath.Join(dir, "web")+`
worker: ${TESTAPP} note $NOTES $PORT "$GREETING" id=$TENDER_WORKER_ID

shell: echo "shell $TENDER_WORKER_ID $PORT" >> `+filepath.Join(dir, "shell")+` && exec $TESTAPP note $NOTES from-sh
`)
	front, admin := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	p := startPool(t, []string{"TENDER_FORMATION=web=3,worker=2", "TENDER_LISTEN=" + front, "TENDER_ADMIN=" + admin,
		"TENDER_ENV_FILE=" + envFile, "TENDER_MIN_UPTIME=300ms"}, "--procfile", procfile)
	st := p.waitFor("3 web ready, 2 worker and 1 shell running", 20*time.Second, func(st apps.Status) bool {
		return inState(st, "web", "ready") == 3 && inState(st, "worker", "running") == 2 && inState(st, "shell", "running") == 1 && len(st.Workers) == 6
	})

	// Every process has its own port, its id within its type, and its type.
	ports := map[string]bool{}
	for _, r := range readRecords(t, filepath.Join(dir, "web")) {
		ports[r.port] = true
	}
	starts := readNotes(t, notes)
	workers := notesOf(starts, "start", "worker")
	if len(workers) != 2 || len(notesOf(starts, "start", "shell")) != 1 {
		t.Fatalf("notes %+v: want 2 workers and 1 shell", starts)
	}
	ids := map[string]bool{}
	for _, n := range workers {
		ids[n.ID] = true
		ports[n.Port] = true
		// $PORT, "$GREETING" and id=$TENDER_WORKER_ID, expanded by tender: no shell ran.
		if want := []string{n.Port, "hello world", "id=" + n.ID}; !slices.Equal(n.Args, want) {
			t.Errorf("worker %s has arguments %q, want %q", n.ID, n.Args, want)
		}
		// The noting process is the worker itself, tender's child: not a shell's.
		if proc, ok := readProc(hostPidOf(t, p.TenderPid(), n.Pid)); !ok || proc.PPid != p.TenderPid() {
			t.Errorf("worker %s (%+v) is not tender's child: a shell ran it", n.ID, proc)
		}
	}
	if !ids["0"] || !ids["1"] {
		t.Errorf("worker ids %v, want 0 and 1", ids)
	}
	sh := notesOf(starts, "start", "shell")[0]
	ports[sh.Port] = true
	if got := strings.TrimSpace(waitFile(t, filepath.Join(dir, "shell"), 5*time.Second)); got != "shell 0 "+sh.Port {
		t.Errorf("the shell command wrote %q, want %q", got, "shell 0 "+sh.Port)
	}
	if len(ports) != 6 {
		t.Errorf("6 processes have %d distinct ports: %v", len(ports), ports)
	}

	// Only web is behind the balancer.
	webPids := map[string]bool{}
	for _, w := range rowsOf(st, "web") {
		webPids[strconv.Itoa(w.Pid)] = true
	}
	for i := 0; i < 12; i++ {
		if f := strings.Fields(httpGet(t, "http://"+front+"/")); len(f) != 3 || !webPids[f[1]] {
			t.Fatalf("the front answered %q, not a web worker (%v)", f, webPids)
		}
	}
	if out, err := p.tenderCLI("status"); err != nil || !strings.HasPrefix(out, "TYPE    ID  PID") || strings.Count(out, "\nworker  ") != 2 {
		t.Errorf("tender status: %v\n%s", err, out)
	}
	if code, body := adminGet(t, admin, "/metrics"); code != 200 || !strings.Contains(body, `tender_worker_uptime_seconds{type="worker",id="1",`) ||
		!strings.Contains(body, `tender_worker_restarts_total{type="web",id="2"} 0`) {
		t.Errorf("/metrics does not label the workers with their type: %d\n%s", code, body)
	}

	// scale worker=3 adds a worker, and web is untouched.
	web := pidsOf(st, "web")
	if out, err := p.tenderCLI("scale", "worker=3"); err != nil {
		t.Fatalf("tender scale worker=3: %v %s", err, out)
	}
	st = p.waitFor("3 workers running", 10*time.Second, func(st apps.Status) bool { return inState(st, "worker", "running") == 3 })
	if got := pidsOf(st, "web"); !slices.Equal(got, web) {
		t.Errorf("scaling worker changed web: %v, was %v", got, web)
	}

	// restart worker replaces every worker, new before old, and leaves web and shell alone.
	before, shell := pidsOf(st, "worker"), pidsOf(st, "shell")
	if out, err := p.tenderCLI("restart", "worker"); err != nil {
		t.Fatalf("tender restart worker: %v %s", err, out)
	}
	st = p.waitFor("every worker replaced", 20*time.Second, func(now apps.Status) bool {
		pids := pidsOf(now, "worker")
		return inState(now, "worker", "running") == 3 && len(pids) == 3 && !slices.ContainsFunc(pids, func(pid int) bool { return slices.Contains(before, pid) })
	})
	if got := pidsOf(st, "web"); !slices.Equal(got, web) || !slices.Equal(pidsOf(st, "shell"), shell) {
		t.Errorf("restart worker touched web or shell: web %v (was %v), shell %v (was %v)", got, web, pidsOf(st, "shell"), shell)
	}
	for _, bad := range [][]string{{"restart", "nosuch"}, {"scale", "nosuch=2"}} {
		if out, err := p.tenderCLI(bad...); err == nil || !strings.Contains(out, `no process type "nosuch": the types are web, worker, shell`) {
			t.Errorf("tender %s: %v %q, want exit 1 naming the types", bad, err, out)
		}
	}

	// SIGTERM: every type stops on SIGTERM, at once, and tender exits 0 with nothing left:
	// every process that started (the workers the restart replaced too) noted its SIGTERM.
	p.stopsWith0()
	all := readNotes(t, notes)
	started := len(notesOf(all, "start", "worker")) + len(notesOf(all, "start", "shell"))
	if termed := len(notesOf(all, "term", "worker")) + len(notesOf(all, "term", "shell")); started != 7 || termed != started {
		t.Errorf("%d processes started, %d noted SIGTERM: want 7 and 7 (2 workers, 1 by scaling, 3 by the restart, the shell)", started, termed)
	}
	for _, bad := range []string{"SIGKILL", "processes left", "left behind"} {
		if strings.Contains(p.Stderr.String(), bad) {
			t.Errorf("the stop was not clean: the log says %q:\n%s", bad, p.Stderr)
		}
	}
}

// A process type that cannot run at all, every one of its workers in a crash loop, ends tender
// with 1 while web serves: the orchestrator must see that the job runner never runs.
func TestProcfileTypeThatCannotRunEndsTender(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	procfile := writeAppFile(t, dir, "Procfile", "web: "+bin.testapp+" serve\nworker: "+bin.testapp+" serve -no-listen -say 'no queue to work on' -exit-after 1ms\n")
	p := startPool(t, []string{"TENDER_FORMATION=web=2,worker=2", "TENDER_MAX_RESTARTS=2", "TENDER_RESTART_DELAY=10ms",
		"TENDER_RESTART_DELAY_MAX=50ms", "TENDER_MIN_UPTIME=1s"}, "--procfile", procfile)
	if code := p.Wait(30 * time.Second); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	log := p.Stderr.String()
	for _, want := range []string{"worker ready: id=0 type=web", "worker ready: id=1 type=web", "no queue to work on",
		"every worker of a process type is in a crash loop: the type cannot run; stopping: type=worker"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}
}

// One web worker of three that keeps crashing ends nothing (part 5's rule): it retries in its
// crash loop while the two others serve and the worker type runs, and SIGTERM ends tender with 0.
func TestProcfileOneCrashingWebWorkerEndsNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	starts := filepath.Join(dir, "starts-of-1")
	procfile := writeAppFile(t, dir, "Procfile", `web: [ "$TENDER_WORKER_ID" != 1 ] || { echo >> `+starts+`; exec `+bin.testapp+` exit 1; }; exec `+bin.testapp+` serve
worker: `+bin.testapp+` note `+filepath.Join(dir, "notes")+`
`)
	p := startPool(t, []string{"TENDER_FORMATION=web=3", "TENDER_MAX_RESTARTS=1", "TENDER_RESTART_DELAY=10ms",
		"TENDER_RESTART_DELAY_MAX=50ms", "TENDER_MIN_UPTIME=300ms"}, "--procfile", procfile)
	// The first start, one restart within the budget, then two retries of the crash loop.
	eventually(t, 20*time.Second, "two retries of web.1 in its crash loop", func() bool {
		if p.Exited() {
			t.Fatalf("tender exited (status %d) while two web workers served", p.Wait(time.Second))
		}
		b, _ := os.ReadFile(starts)
		return strings.Count(string(b), "\n") >= 4
	})
	st := p.waitFor("web.0 and web.2 ready, the worker running", 10*time.Second, func(st apps.Status) bool {
		return inState(st, "web", "ready") == 2 && inState(st, "worker", "running") == 1
	})
	if ids := st.CrashLoops(); !slices.Equal(ids, []string{"web.1"}) {
		t.Errorf("in a crash loop: %v, want web.1", ids)
	}
	p.stopsWith0()
}

// A bad Procfile, formation or env file stops tender with 2 before anything starts, in one
// line that names the file and the line, or the variable.
func TestProcfileBadInputIsExit2(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := writeAppFile(t, dir, "Procfile", "web: "+bin.testapp+" serve\nworker: "+bin.testapp+" sleep 100\n")
	for _, tc := range []struct {
		name     string
		procfile string // the Procfile's text, "" for good
		envFile  string // the env file's text, "" for none
		env      []string
		args     []string
		want     string // with {file} and {envfile} for the files' paths
	}{
		{name: "malformed line", procfile: "web: app\n# fine\nworker app\n", want: `{file}:3: want name: command, got "worker app"`},
		{name: "duplicate type", procfile: "web: app\n\nweb: other\n", want: "{file}:3: process type web again (first on line 1)"},
		{name: "bad type name", procfile: "web server: app\n", want: `{file}:1: process type "web server": want letters, digits, _ and - only`},
		{name: "empty", procfile: "# nothing yet\n\n", want: "{file}: no process type: want name: command lines"},
		{name: "no such file", procfile: "-", want: "cannot read TENDER_PROCFILE: open {file}: no such file or directory"},
		{name: "Procfile and COMMAND", args: []string{"--", bin.testapp, "sleep", "1"}, want: "TENDER_PROCFILE={file} and a COMMAND"},
		{name: "unknown type in the formation", env: []string{"TENDER_FORMATION=web=2,wroker=1"},
			want: `invalid TENDER_FORMATION="web=2,wroker=1": "wroker=1": no process type wroker in the Procfile (it has web, worker`},
		{name: "a release phase alone", procfile: "release: app\n", want: "{file} has no process type but release, which runs before the others"},
		{name: "a formation that runs nothing", env: []string{"TENDER_FORMATION=all=0"}, want: `invalid TENDER_FORMATION="all=0": it runs no process of {file}'s types (web, worker)`},
		{name: "listen without web", procfile: "worker: app\n", env: []string{"TENDER_LISTEN=127.0.0.1:1"}, want: "TENDER_LISTEN=127.0.0.1:1 needs a process type web in {file}"},
		{name: "malformed env file", envFile: "A=1\n\nnot a pair\n", want: `{envfile}:3: want KEY=VALUE with KEY of letters, digits and _, got "not a pair"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, envPath := good, filepath.Join(t.TempDir(), "app.env")
			switch tc.procfile {
			case "":
			case "-":
				path = filepath.Join(t.TempDir(), "Procfile")
			default:
				path = writeAppFile(t, t.TempDir(), "Procfile", tc.procfile)
			}
			env := tc.env
			if tc.envFile != "" {
				must(t, os.WriteFile(envPath, []byte(tc.envFile), 0o644))
				env = append(env, "TENDER_ENV_FILE="+envPath)
			}
			r := startTender(t, AsPID1, append(env, "TENDER_PROCFILE="+path), tc.args...)
			if code := r.Wait(10 * time.Second); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			want := strings.NewReplacer("{file}", path, "{envfile}", envPath).Replace(tc.want)
			if stderr := r.Stderr.String(); !strings.Contains(stderr, want) || strings.Contains(stderr, "worker ready") || strings.Contains(stderr, "worker running") {
				t.Errorf("stderr does not say %q, or says a worker started:\n%s", want, stderr)
			}
		})
	}
}

// Each line of every app process is labelled with where it came from, the bars aligned across
// the types as foreman aligns them; with TENDER_LOG_FORMAT=json each line of tender's stderr,
// its own and its apps', is one JSON object; TENDER_OUTPUT_LABELS=off leaves the lines as written.
func TestProcfileLabelsItsOutput(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"text", "json", "off"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			procfile := writeAppFile(t, t.TempDir(), "Procfile", "web: "+bin.testapp+" serve -say 'web \"says\" hi'\n"+
				"worker: "+bin.testapp+" serve -no-listen -say 'worker says hi'\n")
			env := []string{"TENDER_FORMATION=web=2", "TENDER_MIN_UPTIME=100ms"}
			switch mode {
			case "json":
				env = append(env, "TENDER_LOG_FORMAT=json")
			case "off":
				env = append(env, "TENDER_OUTPUT_LABELS=off")
			}
			p := startPool(t, env, "--procfile", procfile)
			p.waitFor("2 web ready, the worker running", 20*time.Second, func(st apps.Status) bool {
				return inState(st, "web", "ready") == 2 && inState(st, "worker", "running") == 1
			})
			p.stopsWith0()
			lines := strings.Split(strings.TrimSpace(p.Stderr.String()), "\n")
			var apps []string
			for _, line := range lines {
				switch mode {
				case "json":
					var app struct {
						Time, Type, Stream, Line string
						ID                       *int
					}
					if !json.Valid([]byte(line)) || !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &app) != nil {
						t.Fatalf("a line of stderr is not one JSON object: %q", line)
					}
					if app.Stream != "" { // an app's line; tender's own have @message
						if _, err := time.Parse(time.RFC3339Nano, app.Time); err != nil || app.Stream != "stderr" || app.ID == nil {
							t.Fatalf("an app's line without its time, stream or id: %q", line)
						}
						apps = append(apps, app.Type+"."+strconv.Itoa(*app.ID)+" "+app.Line)
					}
				default:
					if strings.Contains(line, "says") {
						apps = append(apps, line)
					}
				}
			}
			slices.Sort(apps)
			want := map[string][]string{
				"text": {`web.0    | web "says" hi`, `web.1    | web "says" hi`, "worker.0 | worker says hi"},
				"json": {`web.0 web "says" hi`, `web.1 web "says" hi`, "worker.0 worker says hi"},
				"off":  {`web "says" hi`, `web "says" hi`, "worker says hi"},
			}[mode]
			if !slices.Equal(apps, want) {
				t.Errorf("the apps' lines: %q, want %q", apps, want)
			}
		})
	}
}

// A pool without a Procfile labels its workers' lines when it starts more than one; the lines
// of a lone worker are written as single mode writes them.
func TestPoolLabelsOutputOfMoreThanOneWorker(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		workers string
		want    []string
	}{
		{"1", []string{"alone says hi"}},
		{"2", []string{"web.0 | alone says hi", "web.1 | alone says hi"}},
	} {
		t.Run(tc.workers, func(t *testing.T) {
			t.Parallel()
			// TENDER_LISTEN: a pool, of one worker too.
			env := []string{"TENDER_WORKERS=" + tc.workers, "TENDER_LISTEN=127.0.0.1:" + freePort(t)}
			p := startPool(t, env, "--", bin.testapp, "serve", "-say", "alone says hi")
			p.waitFor("the workers ready", 20*time.Second, func(st apps.Status) bool {
				return inState(st, "web", "ready") == len(tc.want)
			})
			p.stopsWith0()
			var got []string
			for _, line := range strings.Split(p.Stderr.String(), "\n") {
				if strings.Contains(line, "says hi") {
					got = append(got, line)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("the workers' lines: %q, want %q", got, tc.want)
			}
		})
	}
}
