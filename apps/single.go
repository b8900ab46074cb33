package apps

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/capabilities"
	"github.com/tenderinit/tender/config"
	"github.com/tenderinit/tender/reaper"
)

// Running is the state of the single child while it runs.
const Running = "running"

// restartWanted reports whether, under policy p, an exit with this code is followed by a
// restart.
func restartWanted(p config.RestartPolicy, code int) bool {
	return p == config.RestartAlways || (p == config.RestartOnFailure && code != 0)
}

// Single runs the command as tender's one child in the foreground, as tini does: its own
// process group, the terminal's foreground group, every signal forwarded to it.
type Single struct {
	Spawner *Spawner
	Forward *reaper.Forwarder
	Args    []string
	Env     []string
	Policy  config.RestartPolicy
	Backoff Backoff
	Log     hclog.Logger
	// OOM, when set, tells an exit by SIGKILL from the OOM killer's.
	OOM *capabilities.OOMWatch
	// Started, when set, runs once the first start is over, in a goroutine of its own: work
	// that would otherwise slow the app's start down.
	Started func()
	// ShutdownDelay holds a SIGTERM or SIGINT back this long before it is passed on, while
	// tender reports itself stopping (TENDER_SHUTDOWN_DELAY).
	ShutdownDelay time.Duration

	mu       sync.Mutex // guards state, began and stopping, for Status
	state    WorkerStatus
	began    time.Time
	stopping bool
}

// Status is the one-line worker table of single mode.
func (s *Single) Status() Status {
	s.mu.Lock()
	row := s.state
	if row.Pid != 0 {
		row.UptimeSeconds = time.Since(s.began).Seconds()
	}
	stopping := s.stopping
	s.mu.Unlock()
	st := Status{Workers: []WorkerStatus{row}}
	st.fillFromProc()
	st.Tender.Stopping = stopping
	return st
}

// errNotPool answers the requests that only a pool can carry out.
var errNotPool = errors.New("tender runs a single child: restart and scale need pool mode (TENDER_WORKERS > 1, TENDER_LISTEN or TENDER_PROCFILE)")

// Restart is refused in single mode.
func (s *Single) Restart(string) error { return errNotPool }

// Scale is refused in single mode.
func (s *Single) Scale(string, int) error { return errNotPool }

// setStopping makes Status say that tender is stopping, and Run restart the app no more.
func (s *Single) setStopping() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
}

func (s *Single) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

func (s *Single) setState(pid int, state string, began time.Time) {
	s.mu.Lock()
	s.state.Pid, s.state.State = pid, state
	if !began.IsZero() {
		s.began = began
	}
	s.mu.Unlock()
}

// stopSignals are the signals after which a child that exits is not restarted: the
// orchestrator wants the container to stop.
var stopSignals = map[syscall.Signal]bool{unix.SIGTERM: true, unix.SIGINT: true, unix.SIGQUIT: true}

// Run starts the child, forwards signals to it and restarts it as the policy says. It returns
// the exit status for tender: the child's, 128+N when signal N killed it, 126 or 127 when it
// could not be started.
func (s *Single) Run(signals <-chan os.Signal) int {
	exits := make(chan reaper.Exit, 1)
	for {
		pid, code, started := s.start(exits, signals)
		if s.Started != nil {
			go s.Started()
			s.Started = nil
		}
		if pid == 0 {
			return code
		}
		s.setState(pid, Running, started)
		exit := s.wait(pid, signals, exits)
		reclaimTerminal(pid)
		s.setState(0, "exited", time.Time{})
		code = exit.Code()
		uptime := time.Since(started)
		if exit.Status.Signaled() && exit.Status.Signal() == unix.SIGKILL && s.OOM.Struck() {
			s.Log.Warn("the app was killed by the OOM killer", "pid", pid, "uptime", uptime.Round(time.Millisecond))
		} else {
			s.Log.Debug("child exited", "pid", pid, "status", exit.String(), "uptime", uptime.Round(time.Millisecond))
		}
		if s.isStopping() || !restartWanted(s.Policy, code) {
			return code
		}
		delay, giveUp := s.Backoff.Exited(uptime)
		if giveUp {
			s.Log.Error("the app keeps crashing; giving up", "quick_crashes", s.Backoff.Quick(), "last", exit.String())
			return code
		}
		s.Log.Info("restarting the app", "after", delay, "last", exit.String())
		s.mu.Lock()
		s.state.Restarts++
		s.state.State = "backoff"
		s.mu.Unlock()
		if !s.sleep(delay, signals) {
			return code
		}
	}
}

// stdio: the single child shares tender's standard input, output and error.
var stdio = [3]int{0, 1, 2}

// start starts the child and reports a failed start; a pid of 0 means nothing started, and
// code is then the exit status for tender. Signals that arrive meanwhile go to the child being
// started, as they would to the app: the start may never end (a child stopped before its exec,
// an exec stuck on a dead NFS or FUSE path), and a SIGTERM must still reach it.
func (s *Single) start(exits chan<- reaper.Exit, signals <-chan os.Signal) (pid, code int, started time.Time) {
	started = time.Now()
	type result struct {
		pid int
		err error
	}
	birth := new(reaper.Birth)
	done := make(chan result, 1)
	go func() {
		pid, err := s.Spawner.Start(Spawn{Args: s.Args, Env: s.Env, Stdio: stdio, Foreground: true, Birth: birth}, exits)
		done <- result{pid, err}
	}()
	var res result
	for waiting := true; waiting; {
		select {
		case res = <-done:
			waiting = false
		case sig := <-signals:
			sn := sig.(syscall.Signal)
			if stopSignals[sn] {
				s.setStopping()
			}
			s.Forward.Forward(sn, birth.Pid())
		}
	}
	var se *StartError
	switch {
	case errors.As(res.err, &se):
		s.Log.Error("cannot start the app", "step", se.Step, "error", se.Msg)
		code = se.Code
	case res.err != nil:
		s.Log.Error("cannot start the app", "error", res.err)
		code = ExitCannotExecute
	default:
		s.Log.Debug("started the app", "pid", res.pid, "args", s.Args)
	}
	return res.pid, code, started
}

// wait forwards signals to pid until it exits. A SIGTERM or SIGINT is held back for the
// shutdown delay, during which tender says it is stopping (not ready) while the app serves on;
// a second one meanwhile goes at once.
func (s *Single) wait(pid int, signals <-chan os.Signal, exits <-chan reaper.Exit) reaper.Exit {
	var held syscall.Signal
	var delay <-chan time.Time
	for {
		select {
		case sig := <-signals:
			sn := sig.(syscall.Signal)
			if stopSignals[sn] {
				s.setStopping()
				if s.ShutdownDelay > 0 && held == 0 && delay == nil && (sn == unix.SIGTERM || sn == unix.SIGINT) {
					s.Log.Info("holding the signal back for the shutdown delay", "signal", reaper.SignalName(sn), "for", s.ShutdownDelay)
					held, delay = sn, time.After(s.ShutdownDelay)
					continue
				}
				held = 0 // a second stop signal: the one held goes no more, this one at once
			}
			s.Forward.Forward(sn, pid)
		case <-delay:
			if held != 0 {
				s.Forward.Forward(held, pid)
				held = 0
			}
		case exit := <-exits:
			if exit.Status.Stopped() {
				s.suspend(pid, exit.Status.StopSignal())
				continue
			}
			return exit
		}
	}
}

// terminalStops are the stops of job control on a terminal: Ctrl-Z, and a background process
// that reads from the terminal, or writes to it under `stty tostop`.
var terminalStops = map[syscall.Signal]bool{unix.SIGTSTP: true, unix.SIGTTIN: true, unix.SIGTTOU: true}

// suspend follows the app into a stop of job control on a terminal, as dumb-init does: tender
// stops too, so that the shell it runs under sees its job stopped and gives the prompt back.
// When the shell continues tender (fg, bg), tender gives the app the terminal back if it has
// it, then continues the app. A PID 1 has no shell above it and cannot stop itself: there, as
// with tini, the app stays stopped until it gets SIGCONT. Other stops (SIGSTOP) are the app's
// own business.
func (s *Single) suspend(pid int, sig syscall.Signal) {
	if !terminalStops[sig] || os.Getpid() == 1 {
		return
	}
	if _, err := unix.IoctlGetInt(0, unix.TIOCGPGRP); err != nil {
		return // no terminal of this session
	}
	s.Log.Debug("the app was stopped on the terminal: stopping too", "signal", reaper.SignalName(sig))
	stopHere()
	if ownsTerminal(0) {
		_ = unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, pid)
	}
	s.Log.Debug("continued: continuing the app")
	_ = unix.Kill(-pid, unix.SIGCONT)
}

// stopHere stops tender, and returns once it is continued: SIGSTOP sent to this very thread
// stops the process before the system call returns (one sent to the process might be taken
// by another thread a moment later).
func stopHere() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_ = unix.Tgkill(unix.Getpid(), unix.Gettid(), unix.SIGSTOP)
}

// sleep waits out a restart delay; a stop signal meanwhile ends it with false.
func (s *Single) sleep(d time.Duration, signals <-chan os.Signal) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case sig := <-signals:
			if stopSignals[sig.(syscall.Signal)] {
				s.setStopping()
				return false
			}
		case <-timer.C:
			return true
		}
	}
}
