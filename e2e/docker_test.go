package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tenderinit/tender/apps"
)

// TestDocker runs tender as a user does, as the ENTRYPOINT of a FROM scratch image in a real
// Docker engine, and checks what Docker reports (exit codes, published ports, docker exec) and
// the real processes through the host's /proc and cgroups.
func TestDocker(t *testing.T) {
	t.Parallel()
	needDocker(t)
	image := buildImage(t)

	t.Run("docker stop: an app that handles SIGTERM", func(t *testing.T) {
		t.Parallel()
		c := runContainer(t, image, nil, "testapp", "signals", "/out/signals")
		waitReady(t, filepath.Join(c.Out, "signals"))
		c.stopWithin(0) // the app exits 0 on SIGTERM
		waitSignals(t, filepath.Join(c.Out, "signals"), []int{15})
	})

	t.Run("docker stop: sh -c 'sleep 1000'", func(t *testing.T) {
		t.Parallel()
		// As PID 1 a shell would ignore the SIGTERM, and Docker would kill it after 10 s (137).
		// busybox's sh execs a lone command; with a second one it stays, sleep's parent, and
		// the whole process group gets the SIGTERM.
		for _, script := range []string{"sleep 1000", "sleep 1000; echo not reached"} {
			c := runContainer(t, image, nil, "sh", "-c", script)
			c.waitProc("sleep 1000")
			c.stopWithin(143)
		}
	})

	t.Run("exit codes", func(t *testing.T) {
		t.Parallel()
		cases := []struct {
			opts []string
			args []string
			want int
		}{
			{nil, []string{"testapp", "exit", "0"}, 0},
			{nil, []string{"testapp", "exit", "7"}, 7},
			{nil, []string{"testapp", "killself", "15"}, 143},
			{nil, []string{"testapp", "killself", "9"}, 137},
			{nil, []string{"/no/such/app"}, 127},
			{[]string{"--env", "TENDER_EXIT_REMAP=143:0"}, []string{"testapp", "killself", "15"}, 0},
		}
		started := make([]*Container, len(cases))
		for i, tc := range cases {
			started[i] = runContainer(t, image, tc.opts, tc.args...)
		}
		for i, tc := range cases {
			if got := started[i].Wait(30 * time.Second); got != tc.want {
				t.Errorf("%v %v: exit code %d, want %d", tc.opts, tc.args, got, tc.want)
			}
		}
	})

	t.Run("docker kill -s", func(t *testing.T) {
		t.Parallel()
		c := runContainer(t, image, nil, "testapp", "signals", "/out/signals")
		report := filepath.Join(c.Out, "signals")
		waitReady(t, report)
		var sent []int
		for _, sig := range []int{10, 1, 12, 40} { // USR1, HUP, USR2, a real-time signal
			c.Kill(strconv.Itoa(sig))
			sent = append(sent, sig)
			waitSignals(t, report, sent)
		}
		c.Kill("TERM")
		if code := c.Wait(10 * time.Second); code != 0 {
			t.Errorf("exit code %d after docker kill -s TERM, want the app's 0", code)
		}

		// An app that does not catch the signal dies of it, and its 128+N is the container's.
		c = runContainer(t, image, nil, "sleep", "1000")
		c.waitProc("sleep 1000")
		c.Kill("INT")
		if code := c.Wait(10 * time.Second); code != 130 {
			t.Errorf("exit code %d after docker kill -s INT of sleep, want 130", code)
		}
	})

	t.Run("1000 orphans leave no zombie", func(t *testing.T) {
		t.Parallel()
		c := runContainer(t, image, nil, "testapp", "orphans", "1000", "/out/done")
		waitFile(t, filepath.Join(c.Out, "done"), 60*time.Second)
		// Every orphan is reaped, not merely re-parented: in the end only tender and the app are
		// left in the container.
		var left []Proc
		eventually(t, 10*time.Second, "only tender and the app in the container", func() bool {
			left = c.procs()
			return len(left) == 2
		})
		for _, p := range left {
			if p.State == 'Z' {
				t.Errorf("a zombie is left: %+v", p)
			}
		}
		c.stopWithin(0) // the app exits 0 on SIGTERM
	})

	t.Run("--read-only", func(t *testing.T) {
		t.Parallel()
		// No control socket can be made: tender says so and runs the app all the same.
		c := runContainer(t, image, []string{"--read-only"}, "testapp", "sleep", "1000")
		if !c.logged("running without a control socket", 10*time.Second) {
			t.Errorf("tender did not say that it runs without a control socket")
		}
		c.waitProc("testapp sleep")
		c.stopWithin(143)

		// With a tmpfs /tmp the control socket is there, and so is tender status.
		c = runContainer(t, image, []string{"--read-only", "--tmpfs", "/tmp", "--env", "TENDER_WORKERS=2"}, "testapp", "serve")
		c.waitStatus("2 ready workers", 30*time.Second, nReady(2))
		if out, err := c.Exec("sh", "-c", "test -S /tmp/tender-0/control.sock && echo found"); err != nil || !strings.Contains(out, "found") {
			t.Errorf("no control socket in /tmp/tender-0: %q %v", out, err)
		}
		c.stopWithin(0)
	})

	t.Run("--user 1000:1000", func(t *testing.T) {
		t.Parallel()
		c := runContainer(t, image, []string{"--user", "1000:1000", "--env", "TENDER_WORKERS=2"}, "testapp", "serve")
		// docker exec runs as the container's user, and finds its socket in /tmp/tender-1000.
		c.waitStatus("2 ready workers", 30*time.Second, nReady(2))
		all := append(descendants(c.Pid()), Proc{Pid: c.Pid(), Cmdline: "tender"})
		if len(all) != 3 {
			t.Errorf("%d processes, want tender and 2 workers: %+v", len(all), all)
		}
		for _, p := range all {
			st := procStatus(t, p.Pid)
			if uid, gid := strings.Fields(st["Uid"]), strings.Fields(st["Gid"]); uid[0] != "1000" || gid[0] != "1000" {
				t.Errorf("%s runs as uid %v gid %v, want 1000", p.Cmdline, uid, gid)
			}
		}
		// docker exec -u 0, as one does to debug, looks in every user's /tmp/tender-<uid>.
		if out, err := dockerCmd("exec", "--user", "0", c.Name, "tender", "status"); err != nil || strings.Count(out, " ready ") != 2 {
			t.Errorf("docker exec --user 0 tender status, want 2 ready workers: %q %v", out, err)
		}
		c.stopWithin(0)
	})

	t.Run("--cap-drop ALL", func(t *testing.T) {
		t.Parallel()
		c := runContainer(t, image, []string{"--cap-drop", "ALL"}, "testapp", "sleep", "1000")
		app := c.waitProc("testapp sleep")
		for _, p := range []Proc{{Pid: c.Pid(), Cmdline: "tender"}, app} {
			st := procStatus(t, p.Pid)
			for _, set := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
				if st[set] != "0000000000000000" {
					t.Errorf("%s has %s %s, want none", p.Cmdline, set, st[set])
				}
			}
		}
		// A root without CAP_DAC_OVERRIDE still owns the socket it made.
		if out, err := c.Exec("tender", "status"); err != nil || !strings.Contains(out, "running") {
			t.Errorf("tender status: %q %v", out, err)
		}
		c.stopWithin(143)
	})

	t.Run("--init", func(t *testing.T) {
		t.Parallel()
		c := runContainer(t, image, []string{"--init", "--env", "TENDER_KILL_GRACE=3s"},
			"testapp", "leave", "/out/pid", "5", "/out/go")
		// Its command line reads empty for a moment while it execs (once seen in make test).
		var cmd string
		poll(5*time.Second, 10*time.Millisecond, func() bool { cmd = readCmdline(c.Pid()); return cmd != "" })
		if !strings.Contains(cmd, "docker-init") {
			t.Fatalf("PID 1 of the container is %q, want docker-init", cmd)
		}
		tender := c.waitProc("/usr/local/bin/tender ")
		if tender.PPid != c.Pid() {
			t.Errorf("tender's parent is %d, want docker-init (%d)", tender.PPid, c.Pid())
		}
		waitFile(t, filepath.Join(c.Out, "pid"), 10*time.Second)
		leftover := c.waitProc("/usr/local/bin/testapp ignore-term")
		must(t, os.WriteFile(filepath.Join(c.Out, "go"), nil, 0o644))
		// The app exits and leaves a process that ignores SIGTERM: as a subreaper tender adopts
		// it (docker-init would, were tender not one), ends it after the grace, and exits 5.
		eventually(t, 3*time.Second, "the leftover adopted by tender", func() bool {
			p, ok := readProc(leftover.Pid)
			return ok && p.PPid == tender.Pid
		})
		if code := c.Wait(20 * time.Second); code != 5 {
			t.Errorf("exit code %d, want the app's 5", code)
		}
	})

	t.Run("--memory 64m with a leaking worker", func(t *testing.T) {
		t.Parallel()
		// Worker 0 or 1, whichever claims /tmp/leaker, keeps 2 MiB more every 100 ms until the
		// OOM killer ends it; its replacement finds the file and stays lean.
		c, before := runFront(t, image, 2, []string{"--memory", "64m"}, "-leak", "2", "-leak-once", "/tmp/leaker")
		tender := c.Pid()
		ok, failed, errs, stop := loadAt(c.Addr("8080"), 4)
		if !c.logged("worker killed by the OOM killer", 60*time.Second) {
			close(stop)
			t.Fatalf("no worker was killed by the OOM killer within 60s")
		}
		atKill := ok.Load()
		c.waitStatus("the killed worker replaced", 30*time.Second, func(st apps.Status) bool {
			return nReady(2)(st) && restarts(st) >= 1
		})
		servedAtLeast(t, ok, atKill+21, 10*time.Second) // served after the kill
		close(stop)
		for e := range errs {
			t.Errorf("a request failed: %s", e)
		}
		if failed.Load() != 0 {
			t.Errorf("%d requests served, %d failed", ok.Load(), failed.Load())
		}
		if n := c.oomKills(); n < 1 {
			t.Errorf("the container's memory cgroup counts %d OOM kills, want at least 1", n)
		} else {
			t.Logf("%d OOM kills; %d requests served, %d after the first kill", n, ok.Load(), ok.Load()-atKill)
		}
		if pid := c.inspect("{{.State.Pid}}"); pid != strconv.Itoa(tender) {
			t.Errorf("the container's PID 1 is %s, was tender's %d", pid, tender)
		}
		after, err := c.Status()
		if err != nil {
			t.Fatal(err)
		}
		if allNew(before, after) {
			t.Errorf("both workers were replaced, want only the leaking one: before %+v, after %+v", before.Workers, after.Workers)
		}
		c.stopWithin(0)
	})

	t.Run("a pool through a published port, and docker exec tender status", func(t *testing.T) {
		t.Parallel()
		c, st := runFront(t, image, 3, nil)
		front := &Front{Addr: c.Addr("8080")}
		client := &http.Client{Timeout: 10 * time.Second}
		served := map[string]int{} // by the pid in the answer, in the container's namespace
		const n = 60
		for i := 0; i < n; i++ {
			code, body, err := front.get(client, "/")
			if err != nil || code != http.StatusOK {
				t.Fatalf("GET http://%s/: %d %q %v", front.Addr, code, body, err)
			}
			if f := strings.Fields(body); len(f) == 3 {
				served[f[1]]++
			}
		}
		for _, w := range st.Workers {
			if served[strconv.Itoa(w.Pid)] == 0 {
				t.Errorf("worker %d (pid %d) served none of %d requests: %v", w.ID, w.Pid, n, served)
			}
		}

		out, err := c.Exec("tender", "status")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out, "TYPE  ID  PID") || strings.Count(out, " ready ") != 3 {
			t.Errorf("docker exec tender status, want a table of 3 ready workers:\n%s", out)
		}
		st, err = c.Status()
		if err != nil {
			t.Fatal(err)
		}
		var processed uint64
		for _, w := range st.Workers {
			processed += w.Processed
		}
		if processed < n {
			t.Errorf("tender status counts %d sessions processed, want at least %d", processed, n)
		}
		c.stopWithin(0)
	})

	t.Run("docker kill -s HUP under load", func(t *testing.T) {
		t.Parallel()
		c, before := runFront(t, image, 3, nil)
		ok, failed, errs, stop := loadAt(c.Addr("8080"), 4)
		servedAtLeast(t, ok, 21, 10*time.Second) // the load flows
		atHUP := ok.Load()
		c.Kill("HUP")
		c.waitStatus("every worker replaced", 30*time.Second, func(st apps.Status) bool {
			return nReady(3)(st) && allNew(before, st)
		})
		close(stop)
		for e := range errs {
			t.Errorf("a request failed: %s", e)
		}
		if failed.Load() != 0 || ok.Load() == atHUP {
			t.Errorf("%d requests served (%d during the rolling restart), %d failed", ok.Load(), ok.Load()-atHUP, failed.Load())
		}
		c.stopWithin(0)
	})
}
