package apps

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/balancer"
	"github.com/tenderinit/tender/reaper"
)

// WorkerState is where a worker is in its life.
type WorkerState string

const (
	Starting WorkerState = "starting" // spawned, not yet accepting
	Ready    WorkerState = "ready"    // takes sessions
	Draining WorkerState = "draining" // takes no new sessions, finishes its own
	Stopping WorkerState = "stopping" // sent SIGTERM, SIGKILL at the deadline
	// backoff is a slot's state while it waits to start its worker again.
	backoffState = "backoff"
)

// worker is one process of a group: its start, its readiness, its drain and stop. Its exit
// is its group's to handle (exits.go).
type worker struct {
	p         *Pool
	slot      *slot
	seq       int
	pid       int
	birth     *reaper.Birth // its pid before its start returns, which may be never
	port      int
	state     WorkerState
	started   time.Time
	readyAt   time.Time
	backend   *balancer.Backend
	tail      *Tail
	notify    *notifySocket
	stop      chan struct{} // closed when the worker is gone: ends its helpers
	startErr  *StartError
	expected  bool          // tender stopped it, so its exit is no crash
	signaled  bool          // SIGTERM was sent
	drainedBy time.Time     // when draining, SIGTERM at the latest then
	replacing bool          // it replaces slot.worker, which serves until this one is ready
	kept      bool          // a replacement of it failed: not recycled again (a rolling restart may try)
	reason    string        // why it is being replaced or stopped
	known     []reaper.Proc // its descendants when it became ready: see leftovers
	via       string        // how it became ready: readyPort, readyNotify or readyUptime
	// maxRequests and maxLifetime are its own limits: the settings plus a random part, so
	// that workers started together are not recycled together.
	maxRequests uint64
	maxLifetime time.Duration
	// stopping: it sent STOPPING=1, asking to be recycled.
	stopping bool
}

// limits draws w's own recycling limits: TENDER_MAX_REQUESTS plus 0 to
// TENDER_MAX_REQUESTS_JITTER requests (gunicorn's max_requests_jitter), and TENDER_MAX_LIFETIME
// plus up to a tenth of it.
func (w *worker) limits(cfg PoolConfig) {
	if cfg.MaxRequests > 0 {
		w.maxRequests = cfg.MaxRequests + rand.Uint64N(cfg.MaxRequestsJitter+1)
	}
	if cfg.MaxLifetime > 0 {
		w.maxLifetime = cfg.MaxLifetime + rand.N(cfg.MaxLifetime/10+1)
	}
}

// exitStatus is an exit with status code, as a process that called exit(code) has.
func exitStatus(code int) reaper.Exit { return reaper.Exit{Status: unix.WaitStatus(code << 8)} }

// exitCannotExecute is the exit of a worker that could not be started at all, handled as
// one that died at once so that backoff and the budget apply.
var exitCannotExecute = exitStatus(ExitCannotExecute)

// pidOf is w's pid, or while its start has not returned, the pid the kernel gave it (0 before
// the fork).
func (w *worker) pidOf() int {
	if w.pid != 0 {
		return w.pid
	}
	return w.birth.Pid()
}

// start prepares the worker's port, notify socket and output pipes and starts it in the
// background; its exit comes back as an event.
func (w *worker) start() error {
	p, g := w.p, w.slot.g
	port, err := p.ports.pick()
	if err != nil {
		return err
	}
	w.port = port
	notify, err := newNotifySocket()
	if err != nil {
		return fmt.Errorf("notify socket: %w", err)
	}
	w.notify = notify
	vars := []string{
		"PORT=" + strconv.Itoa(port),
		"TENDER_WORKER_ID=" + strconv.Itoa(w.slot.id),
		"TENDER_PROCESS_TYPE=" + g.name,
		"NOTIFY_SOCKET=" + notify.name,
	}
	if p.cfg.Watchdog > 0 {
		vars = append(vars, "WATCHDOG_USEC="+strconv.FormatInt(p.cfg.Watchdog.Microseconds(), 10))
	}
	env := WithEnv(p.cfg.Env, vars...)
	args, err := g.argv(env)
	if err != nil {
		return err
	}
	var outP, errP [2]int
	if err := unix.Pipe2(outP[:], unix.O_CLOEXEC); err != nil {
		notify.Close()
		return err
	}
	if err := unix.Pipe2(errP[:], unix.O_CLOEXEC); err != nil {
		notify.Close()
		unix.Close(outP[0])
		unix.Close(outP[1])
		return err
	}
	// tender's read ends are non-blocking, so that os.NewFile puts them on the Go runtime's
	// poller: a blocking read would park an OS thread per stream. The worker's write ends stay
	// blocking, as programs expect of their stdout.
	_ = unix.SetNonblock(outP[0], true)
	_ = unix.SetNonblock(errP[0], true)
	w.birth = new(reaper.Birth)
	sp := Spawn{Args: args, Env: env, Stdio: [3]int{p.devNull, outP[1], errP[1]}, Birth: w.birth}

	go func() {
		exits := make(chan reaper.Exit, 1)
		pid, err := p.spawner.Start(sp, exits)
		unix.Close(outP[1])
		unix.Close(errP[1])
		copied := make(chan struct{}, 2)
		for _, c := range []struct {
			fd     int
			out    *Output
			stream string
		}{{outP[0], p.stdout, "stdout"}, {errP[0], p.stderr, "stderr"}} {
			go func() {
				f := os.NewFile(uintptr(c.fd), "worker output")
				copyLines(f, c.out, w.tail, p.lineLabel(w.slot, c.stream))
				f.Close()
				copied <- struct{}{}
			}()
		}
		if pid == 0 {
			p.post(func() { w.onStartFailed(err) })
			<-copied
			<-copied
			return
		}
		p.post(func() { w.onStarted(pid, err) })
		exit := <-exits
		// The last lines belong in the report: wait for them, but not for a grandchild that
		// keeps the pipes open.
		for i := 0; i < 2; i++ {
			select {
			case <-copied:
			case <-time.After(100 * time.Millisecond):
			}
		}
		p.post(func() { g.onExit(w, exit) })
	}()
	return nil
}

func (w *worker) onStartFailed(err error) {
	w.p.log.Error("cannot start a worker", w.slot.logArgs("error", err)...)
	w.slot.g.onExit(w, exitCannotExecute)
}

func (w *worker) onStarted(pid int, err error) {
	p, g := w.p, w.slot.g
	w.pid = pid
	if !p.workers[w] {
		return
	}
	var se *StartError
	if errors.As(err, &se) {
		w.startErr = se // the process exits; the report comes with its exit
		return
	}
	p.log.Debug("worker started", w.slot.logArgs("pid", pid, "port", w.port)...)
	if w.state == Stopping { // told to stop before its pid was known
		w.signalStop()
		return
	}
	if g.isRelease() {
		w.onReleaseStarted()
		return
	}
	sent := w.notify.readySent()
	if g.web {
		ours := func() bool { return listensOn(pid, w.port, descendantPids) }
		go func() {
			if how := waitReady(w.stop, w.port, sent, ours); how != "" {
				p.post(func() { w.onReady(how) })
			}
		}()
		return
	}
	settle, mustNotify := time.Until(w.started.Add(p.cfg.Backoff.MinUptime)), g.sendsReady
	go func() {
		how := waitRunning(w.stop, sent, settle, mustNotify)
		if how == "" {
			return
		}
		p.post(func() { w.onReady(how) })
		if how == readyUptime {
			// Should it send READY=1 after all, its type's next workers are awaited by it.
			select {
			case <-sent:
				p.post(func() { g.sendsReady = true })
			case <-w.stop:
			}
		}
	}()
}

func (w *worker) onStartTimeout() {
	p := w.p
	if !p.workers[w] || w.state != Starting {
		return
	}
	p.log.Error("worker did not become ready in time: stopping it", w.slot.logArgs("pid", w.pidOf(), "timeout", p.cfg.StartTimeout)...)
	w.reason = "did not become ready within " + p.cfg.StartTimeout.String()
	w.terminate()
	w.expected = false // a failed start: it counts against the budget and leaves a report
}

func (w *worker) onReady(how string) {
	p, s := w.p, w.slot
	if !p.workers[w] || w.state != Starting {
		return
	}
	w.state, w.readyAt, w.via, s.g.served = Ready, time.Now(), how, true
	s.portRetries = 0
	msg := "worker ready"
	switch {
	case s.g.web:
		w.backend = balancer.NewBackend(s.id, net.JoinHostPort("127.0.0.1", strconv.Itoa(w.port)))
		w.backend.SetRoutable(true)
		p.router.Add(w.backend)
	case how == readyNotify:
		s.g.sendsReady = true
	default:
		msg = "worker running"
	}
	p.log.Info(msg, s.logArgs("pid", w.pid, "port", w.port, "via", how, "after", w.readyAt.Sub(w.started).Round(time.Millisecond))...)
	if w.replacing {
		old := s.worker
		s.worker, s.next, w.replacing = w, nil, false
		if old != nil {
			old.retire(w.reason)
		}
	}
	if p.cfg.HealthTimeout > 0 && how == readyPort {
		go w.watchHealth()
	}
	go w.watchNotify()
	if s.crashLoop {
		w.watchRecovery()
	}
	go func() {
		if known, err := reaper.Descendants(w.pid); err == nil && len(known) > 0 {
			p.post(func() { w.known = known })
		}
	}()
	s.g.rollOnIfDone(s)
}

// watchHealth probes a ready worker until it leaves; a worker that failed every probe for
// TENDER_HEALTH_TIMEOUT is replaced.
func (w *worker) watchHealth() {
	cfg := w.p.cfg
	interval := max(cfg.HealthTimeout/4, 100*time.Millisecond)
	lastOK := time.Now()
	for {
		select {
		case <-w.stop:
			return
		case <-time.After(interval):
		}
		err := probeHealth(w.port, cfg.HealthHTTP, interval)
		if err == nil {
			lastOK = time.Now()
			continue
		}
		if time.Since(lastOK) >= cfg.HealthTimeout {
			w.p.post(func() {
				w.slot.g.replace(w, "stopped answering on its port for "+cfg.HealthTimeout.String()+": "+err.Error())
			})
			return
		}
	}
}

// watchNotify acts on what a ready worker says on its NOTIFY_SOCKET, until it is gone:
// STOPPING=1 asks for it to be recycled, new before old, when its turn comes; with
// TENDER_WATCHDOG, a worker that said WATCHDOG=1 once must say it again within the interval,
// as systemd's WatchdogSec asks, or it is replaced at once, as a hung worker is (WATCHDOG=trigger
// says so itself). A worker that never pings is not watched: it never asked to be.
func (w *worker) watchNotify() {
	p, n := w.p, w.notify
	var tick <-chan time.Time
	if p.cfg.Watchdog > 0 {
		t := time.NewTicker(max(p.cfg.Watchdog/4, 10*time.Millisecond))
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-w.stop:
			return
		case msg := <-n.said:
			if msg == "STOPPING=1" {
				p.post(w.onStopping)
			} else {
				p.post(func() { w.onHung("it said WATCHDOG=trigger") })
			}
		case <-tick:
			last := n.pinged.Load()
			if silent := time.Since(time.Unix(0, last)); last != 0 && silent > p.cfg.Watchdog {
				p.post(func() {
					w.onHung(fmt.Sprintf("no WATCHDOG=1 for %s (TENDER_WATCHDOG %s)", silent.Round(time.Millisecond), p.cfg.Watchdog))
				})
				return
			}
		}
	}
}

// onStopping marks w as asking to be recycled: it is, in its turn (Pool.recycleWhereDue).
func (w *worker) onStopping() {
	if !w.p.workers[w] || w.stopping {
		return
	}
	w.p.log.Info("worker asks to be recycled (STOPPING=1)", w.slot.logArgs("pid", w.pid)...)
	w.stopping = true
	w.p.recycleWhereDue()
}

// onHung replaces w at once, and takes it out of the balancer meanwhile: it serves no more.
func (w *worker) onHung(why string) {
	if !w.p.workers[w] || w.state != Ready {
		return
	}
	w.p.log.Warn("worker hung: replacing it", w.slot.logArgs("pid", w.pid, "why", why)...)
	if w.backend != nil {
		w.backend.SetRoutable(false)
	}
	w.slot.g.replace(w, "hung: "+why)
}

// pastLimits says why a ready worker is due for recycling: it asked (STOPPING=1), or it is
// past TENDER_MEMORY_LIMIT, or its own share of TENDER_MAX_REQUESTS or TENDER_MAX_LIFETIME;
// "" when it is not. tree is /proc as the pool read it for this look at the workers (nil
// without TENDER_MEMORY_LIMIT).
func (w *worker) pastLimits(tree processes) string {
	cfg := w.p.cfg
	if w.stopping {
		return "it asked to be recycled (STOPPING=1)"
	}
	if cfg.MemoryLimit > 0 {
		if mem := tree.treeMemory(w.pid); mem > cfg.MemoryLimit {
			return fmt.Sprintf("its memory %s (its process tree's) is past TENDER_MEMORY_LIMIT %s", mib(mem), mib(cfg.MemoryLimit))
		}
	}
	if w.maxRequests > 0 && w.backend != nil && w.backend.Processed() >= w.maxRequests {
		return fmt.Sprintf("it served %d sessions (TENDER_MAX_REQUESTS, %d for it)", w.backend.Processed(), w.maxRequests)
	}
	if age := time.Since(w.started); w.maxLifetime > 0 && age >= w.maxLifetime {
		return fmt.Sprintf("it is %s old (TENDER_MAX_LIFETIME, %s for it)", age.Round(time.Second), w.maxLifetime.Round(time.Second))
	}
	return ""
}

// retire takes w out of service: no new sessions, the ones in flight finish (until the
// drain deadline), then SIGTERM.
func (w *worker) retire(reason string) {
	p := w.p
	switch {
	case w.state == Ready && w.backend == nil: // it takes no sessions: nothing to drain
		w.terminate()
	case w.state == Ready:
		w.backend.SetRoutable(false)
		w.state = Draining
		w.drainedBy = time.Now().Add(p.cfg.StopTimeout)
		if p.stopping {
			w.drainedBy = p.drainDeadline()
		}
		p.log.Debug("draining worker", w.slot.logArgs("pid", w.pid, "why", reason)...)
	case w.state == Starting:
		w.terminate()
	case w.state == Draining:
		if p.stopping && w.drainedBy.After(p.drainDeadline()) {
			w.drainedBy = p.drainDeadline()
		}
	}
}

// terminate sends SIGTERM to the worker's process group, and SIGKILL after the grace (before
// the stop deadline, when stopping).
func (w *worker) terminate() {
	if w.state == Stopping {
		return
	}
	if w.backend != nil {
		w.backend.SetRoutable(false)
	}
	w.state, w.expected = Stopping, true
	if w.pidOf() != 0 { // otherwise onStarted does it once the pid is known
		w.signalStop()
	}
}

func (w *worker) signalStop() {
	if w.signaled {
		return
	}
	p := w.p
	w.signaled = true
	grace := p.cfg.KillGrace
	if p.stopping {
		grace = max(min(grace, time.Until(p.stopDeadline)), 0)
	}
	sig := p.cfg.StopSignal
	if sig == 0 {
		sig = unix.SIGTERM
	}
	p.log.Debug("stopping worker", w.slot.logArgs("pid", w.pidOf(), "signal", reaper.SignalName(sig), "kill_after", grace.Round(time.Millisecond))...)
	_ = p.spawner.Reaper.Signal(w.pidOf(), sig, true)
	time.AfterFunc(grace, func() {
		p.post(func() {
			if p.workers[w] {
				p.log.Warn("worker did not stop on its stop signal; sending SIGKILL", w.slot.logArgs("pid", w.pidOf(), "signal", reaper.SignalName(sig), "after", grace.Round(time.Millisecond))...)
				_ = p.spawner.Reaper.Signal(w.pidOf(), unix.SIGKILL, true)
			}
		})
	})
}

// row is the worker's line of the worker table. A worker that is up without having said so
// (a type that serves no port, and sent no READY=1) is running rather than ready.
func (w *worker) row() WorkerStatus {
	row := WorkerStatus{ID: w.slot.id, Type: w.slot.g.name, Pid: w.pid, State: string(w.state), Restarts: w.slot.restarts,
		UptimeSeconds: time.Since(w.started).Seconds()}
	if w.state == Ready && w.via == readyUptime {
		row.State = Running
	}
	if w.backend != nil {
		row.Sessions, row.Processed = w.backend.Sessions(), w.backend.Processed()
	}
	return row
}
