package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A flood of real-time signals never costs tender a standard one: the app, which ignores the
// flood, dies of the SIGTERM sent in the middle of it. (With one byte per signal in a pipe,
// the pipe filled and the SIGTERM was dropped.)
//
// Not parallel: the flood takes both CPUs, which other tests' timing would not survive.
func TestSignalFloodLosesNoSigterm(t *testing.T) {
	const rtmin1 = 35
	for round := range 5 {
		r := startTender(t, AsPID1, nil, "--", bin.testapp, "sigwrap", "-", strconv.Itoa(rtmin1), bin.testapp, "sleep", "60")
		findBelow(t, r.TenderPid(), "sleep 60")
		tender := r.TenderPid()
		var sent atomic.Int64
		stop := make(chan struct{})
		var flooders sync.WaitGroup
		for range 4 {
			flooders.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					for range 100 {
						if syscall.Kill(tender, rtmin1) == nil {
							sent.Add(1)
						}
					}
				}
			})
		}
		time.Sleep(time.Second)
		// tender's pid as found before the flood: walking /proc again while the flood takes
		// both CPUs can outlast the walk's timeout on a slow machine.
		if err := syscall.Kill(tender, syscall.SIGTERM); err != nil {
			t.Fatalf("round %d: signalling tender: %v", round, err)
		}
		time.Sleep(200 * time.Millisecond)
		close(stop)
		flooders.Wait()
		if code := r.Wait(20 * time.Second); code != 128+int(syscall.SIGTERM) {
			t.Fatalf("round %d: exit status %d after %d signals %d and one SIGTERM, want 143: the SIGTERM was lost", round, code, sent.Load(), rtmin1)
		}
	}
}

// An exec that never returns (here, of a file on a FUSE mount whose server never answers, as a
// dead NFS or FUSE path does) blocks nothing but that start: tender goes on reaping (orphans
// that entered with setns, as docker exec makes them) and passes a SIGTERM on to the stuck
// child, which it ends.
func TestStuckExecBlocksNothing(t *testing.T) {
	t.Parallel()
	dir := hangingMount(t)
	r := startTender(t, AsPID1, nil, "--", filepath.Join(dir, "app"))
	tender := r.TenderPid()
	eventually(t, 5*time.Second, "the child to hang in its exec", func() bool {
		for _, p := range descendants(tender) {
			if wchan(p.Pid) == "fuse_get_req" || wchan(p.Pid) == "request_wait_answer" {
				return true
			}
		}
		return false
	})
	for i := range 2 {
		orphanFromOutside(t, tender)
		eventually(t, 5*time.Second, fmt.Sprintf("orphan %d reaped while the exec hangs", i), func() bool {
			return zombiesBelow(tender) == 0 && len(descendants(tender)) == 1
		})
	}
	r.Signal(syscall.SIGTERM)
	if code := r.Wait(10 * time.Second); code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit status %d, want 143: the stuck child killed by the SIGTERM tender passed on", code)
	}
}

// An orphan that comes from outside (a process that entered the container with setns, as
// docker exec does, forked and left) is reaped at once, also while tender has no child of its
// own: here the app has exited and waits out a long restart delay.
func TestOrphanFromOutsideIsReapedWithoutChildren(t *testing.T) {
	t.Parallel()
	r := startTender(t, AsPID1, []string{"TENDER_RESTART=always", "TENDER_RESTART_DELAY=60s", "TENDER_RESTART_DELAY_MAX=60s"},
		"--", bin.testapp, "exit", "3")
	tender := r.TenderPid()
	eventually(t, 5*time.Second, "the app to exit and tender to wait for the restart", func() bool {
		return len(descendants(tender)) == 0 && r.logged("restarting the app")
	})
	orphanFromOutside(t, tender)
	eventually(t, 5*time.Second, "the orphan to be reaped", func() bool {
		return len(descendants(tender)) == 0
	})
	r.Signal(syscall.SIGTERM)
	r.Wait(10 * time.Second)
}

// orphanFromOutside runs, in tender's PID namespace, a shell that starts a background process
// and exits at once: the background process, orphaned, is re-parented to tender, and exits
// 100 ms later. It returns once the shell has exited.
func orphanFromOutside(t *testing.T, tender int) {
	t.Helper()
	cmd := exec.Command("nsenter", "--target", strconv.Itoa(tender), "--pid", "--", "/bin/sh", "-c", "sleep 0.1 & exit 0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nsenter: %v: %s", err, out)
	}
}

// zombiesBelow counts the zombies among tender's descendants.
func zombiesBelow(tender int) int {
	n := 0
	for _, p := range descendants(tender) {
		if p.State == 'Z' {
			n++
		}
	}
	return n
}

// wchan is where in the kernel a process sleeps.
func wchan(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
	return strings.TrimSpace(string(b))
}

// hangingMount mounts a FUSE file system whose server never answers (not even its INIT): every
// lookup below the mount waits, killably, for ever. The test's end closes the server's end,
// which fails every waiting request, and detaches the mount.
func hangingMount(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("opening /dev/fuse: %v", err)
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)
	if err := unix.Mount("tender-hang", dir, "fuse", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		t.Fatalf("mounting a FUSE file system on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		unix.Close(fd)
		_ = unix.Unmount(dir, unix.MNT_DETACH)
	})
	return dir
}

// An exit status goes to the process that exited, never to a new process given its pid: with
// a namespace of 400 pids all held (worker 0 forks until the kernel refuses), orphans that exit
// with 42 free pids that workers restarting in a loop take at once, and no worker may be said
// to have exited with 42.
//
// Not parallel: the loops take both CPUs.
func TestPidReuseNeverMisroutesAnExit(t *testing.T) {
	// Worker 0 holds most pids, then makes orphans that exit with 42 for ever; the others exit
	// with 3 at once and are restarted at once, again and again.
	script := `if [ "$TENDER_WORKER_ID" = 0 ]; then
		i=0; while [ $i -lt 500 ]; do sleep 1000 & i=$((i+1)); done 2>/dev/null
		while :; do (sh -c 'exit 42' &); done
	fi
	exit 3`
	env := []string{"TENDER_WORKERS=4", "TENDER_START_TIMEOUT=1h", "TENDER_MAX_RESTARTS=0",
		"TENDER_RESTART_DELAY=1ms", "TENDER_RESTART_DELAY_MAX=1ms", "TENDER_KILL_GRACE=0"}
	needRoot(t)
	// pid_max is the namespace's own from Linux 6.14 on: set inside it, before tender. Before,
	// the write would shrink the whole machine's.
	if !kernelAtLeast(6, 14) {
		t.Skip("needs a PID namespace's own pid_max (Linux 6.14)")
	}
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
		"/bin/sh", "-c", `echo 400 >/proc/sys/kernel/pid_max && exec "$@"`, "sh",
		bin.tender, "--", "/bin/sh", "-c", script)
	r := startCmd(t, cmd, env, 1)
	tender := r.TenderPid()
	eventually(t, 20*time.Second, "worker 0 to hold its pids", func() bool { return len(descendants(tender)) > 250 })
	time.Sleep(4 * time.Second)
	r.Signal(syscall.SIGTERM)
	r.Wait(20 * time.Second)
	if n := strings.Count(r.Stderr.String(), "exit status 42"); n > 0 {
		t.Errorf("%d exits with status 42 were given to workers, which exit with 3", n)
	}
	if n := strings.Count(r.Stderr.String(), "exit status 3"); n < 10 {
		t.Errorf("only %d worker exits with 3: the workers did not restart in a loop", n)
	}
}

// kernelAtLeast reports whether the running kernel is at least major.minor.
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var ma, mi int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi)
	return ma > major || ma == major && mi >= minor
}
