package apps

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/reaper"
)

// leftovers are the processes a worker may leave behind when it ends, as supervisord's
// killasgroup ends them (`npm start` leaves node running when npm dies). Once the worker has
// exited its children are tender's (PID 1 or subreaper), no longer its descendants in /proc, so
// they are found by what they kept of it:
//   - its process group, which the worker leads (its pid, unless that pid is in use again:
//     then the group is empty, as the kernel reuses no pid while a group holds it);
//   - its NOTIFY_SOCKET in their environment, a name of its own, which its descendants inherit
//     even when they leave the group (setsid), as Jenkins finds a build's processes by a
//     variable of its own; reading another user's environment needs CAP_SYS_PTRACE, so this is
//     best effort;
//   - the descendants found in /proc while it lived (once it was ready).
//
// Each is signalled through reaper.Proc, which checks its start time, so that a pid reused
// since the scan is never hit.
type leftovers struct {
	pgid   int
	marker []byte // "\x00NOTIFY_SOCKET=<name>\x00", as in /proc/<pid>/environ
	known  []reaper.Proc
}

func newLeftovers(pid int, notifyName string, known []reaper.Proc) leftovers {
	return leftovers{pgid: pid, marker: []byte("\x00NOTIFY_SOCKET=" + notifyName + "\x00"), known: known}
}

// endLeftovers ends what w left behind in the background, for the pool's goroutine never
// waits, and returns a channel closed once that is done: the restart of w's slot waits for it.
func (w *worker) endLeftovers() <-chan struct{} {
	done := make(chan struct{})
	if w.pid == 0 || w.notify == nil { // it never started
		close(done)
		return done
	}
	l := newLeftovers(w.pid, w.notify.name, w.known)
	level, who, grace := crashLevel(w.slot, hclog.Info), w.slot.logArgs(), w.p.cfg.KillGrace
	go func() {
		defer close(done)
		l.end(grace, w.p.log, level, who)
	}()
	return done
}

// find lists the leftovers alive now (zombies are dead already: the reaper collects them).
func (l leftovers) find() []reaper.Proc {
	procs, err := reaper.Below(os.Getpid())
	if err != nil {
		return nil
	}
	groupGone := !procExists(l.pgid)
	var found []reaper.Proc
	for _, p := range procs {
		if p.State == 'Z' {
			continue
		}
		if (groupGone && p.Pgid == l.pgid) || slices.Contains(l.known, p.Proc) || l.inEnviron(p.Pid) {
			found = append(found, p.Proc)
		}
	}
	return found
}

// inEnviron reports whether pid's environment holds the worker's NOTIFY_SOCKET.
func (l leftovers) inEnviron(pid int) bool {
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	return err == nil && (bytes.HasPrefix(env, l.marker[1:]) || bytes.Contains(env, l.marker))
}

// end sends SIGTERM (and SIGCONT, so that a stopped one acts on it) to every leftover, SIGKILL
// to those still there after grace, and returns once none is left, or reaper.KillWait after
// the SIGKILL. It looks again every reaper.Rescan, for processes forked meanwhile. who
// names the worker in the log.
func (l leftovers) end(grace time.Duration, log hclog.Logger, level hclog.Level, who []any) {
	found := l.find()
	if len(found) == 0 {
		return
	}
	log.Log(level, "ending what a worker left behind", append(who, "pid", l.pgid, "processes", pids(found))...)
	termed := map[reaper.Proc]bool{}
	for deadline := time.Now().Add(grace); len(found) > 0 && time.Now().Before(deadline); found = l.find() {
		for _, p := range found {
			if !termed[p] {
				termed[p] = true
				_ = p.Signal(unix.SIGTERM, unix.SIGCONT)
			}
		}
		time.Sleep(reaper.Rescan)
	}
	if len(found) == 0 {
		return
	}
	log.Warn("what a worker left behind did not end on SIGTERM; sending SIGKILL", append(who, "processes", pids(found), "after", grace)...)
	for deadline := time.Now().Add(reaper.KillWait); len(found) > 0; found = l.find() {
		if time.Now().After(deadline) {
			log.Warn("what a worker left behind is still alive after SIGKILL; leaving it", append(who, "processes", pids(found))...)
			return
		}
		for _, p := range found {
			_ = p.Signal(unix.SIGKILL)
		}
		time.Sleep(reaper.Rescan)
	}
}

func pids(procs []reaper.Proc) []int {
	out := make([]int, len(procs))
	for i, p := range procs {
		out[i] = p.Pid
	}
	return out
}

func procExists(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}
