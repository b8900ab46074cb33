package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The machines here run as root without CAP_SYS_RESOURCE, like an unprivileged container: a
// process may raise its oom_score_adj, and lower it only down to its minimum (0). Starting
// tender from a parent at 500 shows what tender takes for itself and what the apps get.
const startAt500 = "echo 500 > /proc/self/oom_score_adj"

// appBelow finds the app (the process running cmdline) below tender, once it has exec'd.
func appBelow(t *testing.T, r *Run, cmdline string) Proc {
	t.Helper()
	return findBelow(t, r.TenderPid(), cmdline)
}

func TestOOMScoresOfTenderAndApps(t *testing.T) {
	for _, tc := range []struct {
		name        string
		env         []string
		tender, app int
		log         string
	}{
		{"asks 100, apps keep 500", []string{"TENDER_OOM_SCORE_ADJ=100"}, 100, 500, "has the oom_score_adj it asked for"},
		{"-1000 refused, takes the lowest accepted", nil, 0, 500,
			"OOM protection is partial without CAP_SYS_RESOURCE (see tender probe): asked=-1000 got=0 apps=500\n"},
		{"the remedy at debug level", []string{"TENDER_LOG_LEVEL=debug"}, 0, 500, "remedy=\"the apps (500) are still the OOM killer's choice before tender (0); " +
			"for full protection run the container with --cap-add SYS_RESOURCE\""},
		{"apps +200 relative to the original", []string{"TENDER_APP_OOM_SCORE_ADJ=+200"}, 0, 700, "OOM protection is partial"},
		{"apps absolute", []string{"TENDER_APP_OOM_SCORE_ADJ=800"}, 0, 800, "OOM protection is partial"},
		{"off", []string{"TENDER_OOM_SCORE_ADJ=off", "TENDER_LOG_LEVEL=debug"}, 500, 500, "TENDER_OOM_SCORE_ADJ=off"},
		{"relative is capped at 1000", []string{"TENDER_OOM_SCORE_ADJ=off", "TENDER_APP_OOM_SCORE_ADJ=+600"}, 500, 1000,
			`the apps' oom_score_adj is capped to the kernel's range: TENDER_APP_OOM_SCORE_ADJ="+600" original=500 apps=1000`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := startTenderFrom(t, startAt500, AsPID1, tc.env, "--", "/bin/sleep", "30")
			app := appBelow(t, r, "sleep 30")
			tender := r.TenderPid()
			eventually(t, 5*time.Second, fmt.Sprintf("tender's score to be %d", tc.tender), func() bool {
				return oomScore(t, tender) == tc.tender
			})
			if got := oomScore(t, app.Pid); got != tc.app {
				t.Errorf("the app's oom_score_adj is %d, want %d", got, tc.app)
			}
			eventually(t, 5*time.Second, "the OOM log line", func() bool { return strings.Contains(r.Stderr.String(), tc.log) })
			r.Signal(syscall.SIGTERM)
			r.Wait(10 * time.Second)
		})
	}
}

// Started at the container's minimum, tender gains nothing, and does not call that partial.
func TestOOMProtectionUnavailableAtTheMinimum(t *testing.T) {
	t.Parallel()
	r := startTenderFrom(t, "echo 0 > /proc/self/oom_score_adj", AsPID1, nil, "--", "/bin/true")
	if code := r.Wait(10 * time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	line := "OOM protection is unavailable without CAP_SYS_RESOURCE (see tender probe): asked=-1000 got=0\n"
	if !strings.Contains(r.Stderr.String(), line) || strings.Contains(r.Stderr.String(), "partial") {
		t.Errorf("want the line %q, and no word of partial protection:\n%s", line, r.Stderr)
	}
}

// A score below the container's minimum cannot be set without CAP_SYS_RESOURCE: the app is not
// started, and the error names the step.
func TestAppOOMScoreBelowMinimumIsRefused(t *testing.T) {
	t.Parallel()
	r := startTenderFrom(t, startAt500, AsPID1, []string{"TENDER_APP_OOM_SCORE_ADJ=-100"}, "--", "/bin/sleep", "30")
	if code := r.Wait(10 * time.Second); code != 126 {
		t.Errorf("exit status %d, want 126", code)
	}
	if !strings.Contains(r.Stderr.String(), `step="set oom_score_adj"`) || !strings.Contains(r.Stderr.String(), "-100") {
		t.Errorf("the error does not name the step and the value:\n%s", r.Stderr)
	}
}

// The app starts with fds 0-2 only, an empty signal mask and no ignored signal, however tender
// itself was started.
func TestAppStartsClean(t *testing.T) {
	t.Parallel()
	// fds 5, 7 and 200 open without close-on-exec; SIGTERM and SIGUSR1 blocked, SIGHUP and
	// SIGPIPE ignored: all inherited by tender.
	setup := startAt500 + "\nexec 5</etc/hostname 7</etc/hostname 200</etc/hostname\n" +
		fmt.Sprintf(`set -- %s sigwrap 15,10 1,13 "$@"`, bin.testapp)
	// The same set-up over a plain program shows the state tender is started in (tender's
	// own status would not: the Go runtime rearranges its threads' masks).
	control := func(cmd ...string) string {
		out, err := exec.Command("bash", append([]string{"-c", setup + "\nexec \"$@\"", "bash"}, cmd...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("control run of the set-up: %v\n%s", err, out)
		}
		return string(out)
	}
	// The set-up adds to whatever the test itself inherited (signal 32 ignored, say).
	status, fds := control("grep", "Sig", "/proc/self/status"), control("ls", "/proc/self/fd")
	blocked, ignored := sigMask(status, "SigBlk"), sigMask(status, "SigIgn")
	if blocked&(1<<14|1<<9) != 1<<14|1<<9 || ignored&(1<<0|1<<12) != 1<<0|1<<12 || !regexpMatch(`(?m)^200$`, fds) {
		t.Fatalf("the set-up does not give the state it should:\n%s\n%s", status, fds)
	}
	r := startTenderFrom(t, setup, AsPID1, nil, "--", "/bin/sleep", "31")
	tender := r.TenderPid()
	if fds := openFds(t, tender); !slices.Contains(fds, 200) {
		t.Fatalf("tender did not inherit fd 200 (fds %v)", fds)
	}
	app := appBelow(t, r, "sleep 31")
	if fds := openFds(t, app.Pid); fmt.Sprint(fds) != "[0 1 2]" {
		t.Errorf("the app has fds %v, want [0 1 2]", fds)
	}
	st := procStatus(t, app.Pid)
	if st["SigBlk"] != "0000000000000000" || st["SigIgn"] != "0000000000000000" {
		t.Errorf("the app's SigBlk %s SigIgn %s, want both empty", st["SigBlk"], st["SigIgn"])
	}
	if got := oomScore(t, app.Pid); got != 500 {
		t.Errorf("the app's oom_score_adj is %d, want tender's original 500", got)
	}
	r.Signal(syscall.SIGTERM)
	r.Wait(10 * time.Second)
}

// sigMask reads a signal set (SigBlk, SigIgn) from /proc status text: bit N-1 is signal N.
func sigMask(status, field string) uint64 {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			m, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return m
		}
	}
	return 0
}

// capMask is the /proc status form of a capability set.
func capMask(bits ...int) string {
	var m uint64
	for _, b := range bits {
		m |= 1 << b
	}
	return fmt.Sprintf("%016x", m)
}

const (
	capKill           = 5
	capNetBindService = 10
)

func TestAppCapabilitiesUserAndLimits(t *testing.T) {
	kept := capMask(capKill, capNetBindService)
	for _, tc := range []struct {
		name string
		env  []string
		want map[string]string
	}{
		{"root keeps two capabilities", []string{"TENDER_APP_CAPS=CAP_NET_BIND_SERVICE,kill"},
			map[string]string{"CapEff": kept, "CapPrm": kept, "CapBnd": kept, "CapInh": kept, "Uid": "0\t0\t0\t0"}},
		{"a non-root user keeps them through ambient", []string{"TENDER_APP_USER=nobody", "TENDER_APP_CAPS=CAP_NET_BIND_SERVICE,CAP_KILL"},
			map[string]string{"CapEff": kept, "CapPrm": kept, "CapAmb": kept, "CapBnd": kept, "Uid": "65534\t65534\t65534\t65534", "Gid": "65534\t65534\t65534\t65534"}},
		{"a non-root user without kept capabilities has none", []string{"TENDER_APP_USER=65534:65534"},
			map[string]string{"CapEff": capMask(), "CapPrm": capMask(), "Uid": "65534\t65534\t65534\t65534", "Groups": ""}},
		{"none", []string{"TENDER_APP_CAPS=none"},
			map[string]string{"CapEff": capMask(), "CapBnd": capMask()}},
		{"no_new_privs", []string{"TENDER_APP_NO_NEW_PRIVS=true"},
			map[string]string{"NoNewPrivs": "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := startTender(t, AsPID1, tc.env, "--", "/bin/sleep", "32")
			app := appBelow(t, r, "sleep 32")
			st := procStatus(t, app.Pid)
			for k, v := range tc.want {
				if st[k] != v {
					t.Errorf("the app's %s is %q, want %q", k, st[k], v)
				}
			}
			r.Signal(syscall.SIGTERM)
			r.Wait(10 * time.Second)
		})
	}
	// An inheritable set tender was given (older Docker filled it) does not reach a non-root
	// app, where a program with file capabilities would turn it back into capabilities.
	t.Run("a non-root user inherits no inheritable set", func(t *testing.T) {
		t.Parallel()
		r := startTenderFrom(t, `exec setpriv --inh-caps=+kill,+net_bind_service -- "$@"`, AsPID1,
			[]string{"TENDER_APP_USER=65534:65534"}, "--", "/bin/sleep", "36")
		if st := procStatus(t, r.TenderPid()); st["CapInh"] != kept {
			t.Fatalf("tender's CapInh is %q: the test's set-up did not fill it", st["CapInh"])
		}
		app := appBelow(t, r, "sleep 36")
		if st := procStatus(t, app.Pid); st["CapInh"] != capMask() || st["CapPrm"] != capMask() || st["CapAmb"] != capMask() {
			t.Errorf("the app's CapInh %s, CapPrm %s, CapAmb %s: want none", st["CapInh"], st["CapPrm"], st["CapAmb"])
		}
		r.Signal(syscall.SIGTERM)
		r.Wait(10 * time.Second)
	})
	// tender running as the app's own user, without capabilities, starts it: it does not ask
	// for the groups it has already (setgroups needs CAP_SETGID even so).
	t.Run("the user tender is already", func(t *testing.T) {
		t.Parallel()
		needRoot(t)
		cmd := exec.Command(bin.tender, "--", "/bin/sh", "-c", "exit 7")
		cmd.Env = append(cleanEnv(), "TENDER_APP_USER=65534:65534")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
		out, err := cmd.CombinedOutput()
		if code := exitCode(cmd.ProcessState, err); code != 7 {
			t.Errorf("exit status %d, want the app's 7:\n%s", code, out)
		}
	})
	t.Run("nofile", func(t *testing.T) {
		t.Parallel()
		r := startTender(t, AsPID1, []string{"TENDER_APP_NOFILE=512:1024"}, "--", "/bin/sleep", "33")
		app := appBelow(t, r, "sleep 33")
		limits, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", app.Pid))
		if !regexpMatch(`Max open files\s+512\s+1024\s`, string(limits)) {
			t.Errorf("the app's limits:\n%s", limits)
		}
		r.Signal(syscall.SIGTERM)
		r.Wait(10 * time.Second)
	})
}

func TestCleanStartFailureNamesTheStep(t *testing.T) {
	for _, tc := range []struct {
		env  string
		step string
	}{
		{"TENDER_APP_CAPS=CAP_SYS_RESOURCE", "read capabilities"}, // tender lacks it here
		{"TENDER_APP_NOFILE=1:99999999", "set RLIMIT_NOFILE"},     // above the hard limit
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Parallel()
			r := startTender(t, AsPID1, []string{tc.env}, "--", "/bin/sleep", "34")
			if code := r.Wait(10 * time.Second); code != 126 {
				t.Errorf("exit status %d, want 126", code)
			}
			if !strings.Contains(r.Stderr.String(), `step="`+tc.step+`"`) {
				t.Errorf("the error does not name the step %q:\n%s", tc.step, r.Stderr)
			}
		})
	}
}

func TestUnknownAppUserIsAConfigError(t *testing.T) {
	t.Parallel()
	r := startTender(t, AsPID1, []string{"TENDER_APP_USER=no-such-user-here"}, "--", "/bin/sleep", "35")
	if code := r.Wait(10 * time.Second); code != 2 {
		t.Errorf("exit status %d, want 2", code)
	}
	if !strings.Contains(r.Stderr.String(), "TENDER_APP_USER") {
		t.Errorf("the error does not name the variable:\n%s", r.Stderr)
	}
}

// Sockets passed by socket activation reach the app at the same numbers, with LISTEN_PID set to
// the app's own pid, and LISTEN_FDS (and LISTEN_FDNAMES) saying how many really came.
func TestSocketActivation(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct{ name, env, want string }{
		{"as many as announced", "LISTEN_FDS=2", "LISTEN_FDS=2"},
		{"fewer than announced", "LISTEN_FDS=3 LISTEN_FDNAMES=a:b:c", "LISTEN_FDS=2 LISTEN_FDNAMES=a:b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			info := filepath.Join(t.TempDir(), "info")
			script := fmt.Sprintf(`exec 3</etc/hostname 4</etc/hostname 9</etc/hostname; LISTEN_PID=$$ %s exec %s -- %s info %s`,
				tc.env, bin.tender, bin.testapp, info)
			r := startCmd(t, exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "bash", "-c", script), nil, 1)
			var got struct {
				Pid int
				Fds []int
				Env []string
			}
			must(t, json.Unmarshal([]byte(waitFile(t, info, 10*time.Second)), &got))
			if fmt.Sprint(got.Fds) != "[0 1 2 3 4]" {
				t.Errorf("the app has fds %v, want [0 1 2 3 4]: the two passed sockets, not fd 9", got.Fds)
			}
			listen := slices.DeleteFunc(got.Env, func(kv string) bool { return !strings.HasPrefix(kv, "LISTEN_") })
			for _, want := range append(strings.Fields(tc.want), "LISTEN_PID="+strconv.Itoa(got.Pid)) {
				if !slices.Contains(listen, want) {
					t.Errorf("the app's environment has no %s: %v", want, listen)
				}
			}
			_ = syscall.Kill(r.cmd.Process.Pid, syscall.SIGTERM)
		})
	}
}

// The second Passenger bug: a failed spawn must leak nothing. The app fails to start a
// thousand times in a row, in two ways; tender's fd count is the same after as before, and its
// RSS within a small margin.
func TestThousandFailedStartsLeakNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"exec of a missing file", []string{"/no/such/app"}},
		{"an app that exits at once", []string{bin.testapp, "exit", "3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A few ms between attempts leave moments with no start in flight to sample.
			env := []string{"TENDER_RESTART=always", "TENDER_MAX_RESTARTS=0", "TENDER_RESTART_DELAY=3ms", "TENDER_RESTART_DELAY_MAX=3ms"}
			r := startTender(t, AsPID1, env, append([]string{"--"}, tc.args...)...)
			tender := r.TenderPid()
			restarts := func() int { return strings.Count(r.Stderr.String(), "restarting the app") }
			// The fewest fds and the least RSS over some samples: a start in flight holds three
			// pipes for a moment.
			sample := func(at int) (fds, rssKiB int) {
				eventually(t, 60*time.Second, fmt.Sprintf("%d restarts", at), func() bool { return restarts() >= at })
				fds, rssKiB = 1<<30, 1<<30
				for i := 0; i < 100; i++ {
					fds = min(fds, len(openFds(t, tender)))
					rss, _ := strconv.Atoi(strings.Fields(procStatus(t, tender)["VmRSS"])[0])
					rssKiB = min(rssKiB, rss)
					time.Sleep(3 * time.Millisecond)
				}
				return fds, rssKiB
			}
			// The first sample comes after the Go heap has grown to its first GC goal.
			fds0, rss0 := sample(300)
			fds1, rss1 := sample(1300)
			if fds1 != fds0 {
				t.Errorf("tender has %d fds after 1000 more failed starts, %d before", fds1, fds0)
			}
			// A leak per start shows in the thousands (a goroutine's stack alone is 8 KiB).
			if rss1-rss0 > 2048 {
				t.Errorf("tender's RSS grew from %d KiB to %d KiB over 1000 failed starts", rss0, rss1)
			}
			r.Signal(syscall.SIGTERM)
			r.Wait(10 * time.Second)
		})
	}
}

// A process started after tender lowered its own score (every restart, every pool worker) is
// where the Passenger bug bit: it must still get the original score, not tender's.
func TestRestartedAppGetsTheOriginalScore(t *testing.T) {
	t.Parallel()
	env := []string{"TENDER_OOM_SCORE_ADJ=100", "TENDER_RESTART=always", "TENDER_RESTART_DELAY=50ms", "TENDER_MIN_UPTIME=1s"}
	r := startTenderFrom(t, startAt500, AsPID1, env, "--", "/bin/sleep", "0.3")
	tender := r.TenderPid()
	first := appBelow(t, r, "sleep 0.3")
	eventually(t, 5*time.Second, "tender at 100", func() bool { return oomScore(t, tender) == 100 })
	var second Proc
	eventually(t, 5*time.Second, "a restarted app", func() bool {
		second = appBelow(t, r, "sleep 0.3")
		return second.Pid != first.Pid
	})
	if got := oomScore(t, second.Pid); got != 500 {
		t.Errorf("the restarted app's oom_score_adj is %d, want the original 500 (tender is at %d)", got, oomScore(t, tender))
	}
	r.Signal(syscall.SIGTERM)
	r.Wait(10 * time.Second)
}

// Go raises its own soft RLIMIT_NOFILE to the hard limit; the apps get the limit tender was
// started with back, as os/exec gives it, unless TENDER_APP_NOFILE says otherwise.
func TestAppsGetTheNofileLimitTenderWasStartedWith(t *testing.T) {
	// A soft limit well below a hard one that this machine allows (lowering needs no privilege).
	var lim syscall.Rlimit
	must(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	hard := min(lim.Max, 4096)
	soft := min(512, hard/2)
	limits := fmt.Sprintf("%d %d", soft, hard)
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"single", nil, limits},
		{"pool", []string{"TENDER_WORKERS=2"}, limits},
		{"TENDER_APP_NOFILE", []string{"TENDER_APP_NOFILE=100:200"}, "100 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			setup := fmt.Sprintf("ulimit -Sn %d; ulimit -Hn %d", soft, hard)
			r := startTenderFrom(t, setup, AsPID1, tc.env, "--", "/bin/sleep", "36")
			app := appBelow(t, r, "sleep 36")
			if got, want := nofileOf(t, r.TenderPid()), fmt.Sprintf("%d %d", hard-1, hard); got != want {
				t.Errorf("tender's own limit is %q, want Go's raise to %q", got, want)
			}
			if got := nofileOf(t, app.Pid); got != tc.want {
				t.Errorf("the app's RLIMIT_NOFILE is %q, want %q", got, tc.want)
			}
			r.Signal(syscall.SIGTERM)
			r.Wait(10 * time.Second)
		})
	}
}

// nofileOf is "soft hard" of a process's RLIMIT_NOFILE, from /proc/PID/limits.
func nofileOf(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			return f[0] + " " + f[1]
		}
	}
	t.Fatalf("no open files limit in /proc/%d/limits", pid)
	return ""
}
