package apps

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/balancer"
	"github.com/tenderinit/tender/capabilities"
	"github.com/tenderinit/tender/config"
	"github.com/tenderinit/tender/reaper"
)

// Router is the balancer as the pool sees it: the pool adds a backend for each worker, says
// when it may take sessions, and removes it when the worker is gone.
type Router interface {
	Add(*balancer.Backend)
	Remove(*balancer.Backend)
	QueueLen() int
	// Close stops accepting sessions; sessions in flight go on.
	Close()
}

// PoolConfig is what the pool is told to do.
type PoolConfig struct {
	Args          []string
	Env           []string
	Workers       int
	StartTimeout  time.Duration
	StopTimeout   time.Duration
	KillGrace     time.Duration
	HealthTimeout time.Duration
	ShutdownDelay time.Duration
	HealthHTTP    bool // probe health with OPTIONS * rather than the listen queue
	MemoryLimit   uint64
	MaxRequests   uint64
	Restart       config.RestartPolicy
	Backoff       Backoff // the template of every slot's backoff
	// OOM tells an exit by SIGKILL from the OOM killer's; nil tells none.
	OOM *capabilities.OOMWatch
}

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

// Pool runs N workers of the command and watches over them like Passenger's watchdog: clean
// starts, restarts with backoff, recycling on memory and request count, rolling restarts,
// graceful stop. One goroutine, Run's, owns every slot and worker; everything else talks to it
// through events.
type Pool struct {
	cfg     PoolConfig
	spawner *Spawner
	router  Router
	log     hclog.Logger
	stdout  *Output
	stderr  *Output
	oom     *capabilities.OOMWatch
	devNull int
	ports   *portPicker

	events  chan func()
	done    chan struct{} // closed when Run returns
	slots   []*slot
	workers map[*worker]bool
	seq     int

	served   bool // a worker has been ready once
	stopping bool
	// delaying: SIGTERM or SIGINT came, and the pool serves on for TENDER_SHUTDOWN_DELAY
	// while it reports itself stopping.
	delaying     bool
	stopDeadline time.Time
	exitCode     int

	rolling     []*slot // slots waiting for their turn in a rolling restart
	rollingSlot *slot   // the slot being rolled now
}

// slot is a place for one worker: its TENDER_WORKER_ID, its backoff and its last failure.
type slot struct {
	id       int
	backoff  Backoff
	restarts int
	report   *SpawnReport
	worker   *worker // the worker that serves, or will serve, this slot
	next     *worker // its replacement while one is starting
	retiring bool    // scaled away: it ends with its worker
	waiting  bool    // a restart is scheduled
	// portRetries: restarts in a row because its worker's port was taken (not counted as crashes).
	portRetries int
	// crashLoop: its budget of quick crashes is spent; it retries while the others serve.
	crashLoop bool
}

// worker is one process of the command.
type worker struct {
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
}

// NewPool makes a pool; Run starts it. router may be nil when there is no front socket.
func NewPool(cfg PoolConfig, spawner *Spawner, router Router, log hclog.Logger) (*Pool, error) {
	devNull, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/null for the workers' stdin: %w", err)
	}
	if router == nil {
		router = noRouter{}
	}
	return &Pool{
		cfg: cfg, spawner: spawner, router: router, log: log,
		stdout: NewOutput(Stdout), stderr: NewOutput(Stderr),
		oom: cfg.OOM, devNull: devNull, ports: newPortPicker(log),
		events: make(chan func(), 64), done: make(chan struct{}), workers: map[*worker]bool{},
	}, nil
}

// noRouter is the router of a pool without a front socket.
type noRouter struct{}

func (noRouter) Add(*balancer.Backend)    {}
func (noRouter) Remove(*balancer.Backend) {}
func (noRouter) QueueLen() int            { return 0 }
func (noRouter) Close()                   {}

// post runs fn in the pool's goroutine, unless the pool is done. It must not be called from
// that goroutine itself (use go p.post there).
func (p *Pool) post(fn func()) {
	select {
	case p.events <- fn:
	case <-p.done:
	}
}

// Run starts the workers and watches over them until a stop signal has ended them all, or
// the workers crash in a loop. It returns tender's exit status: 0 after a graceful stop,
// non-zero after a crash loop.
func (p *Pool) Run(signals <-chan os.Signal) int {
	defer close(p.done)
	for i := 0; i < p.cfg.Workers; i++ {
		p.addSlot()
	}
	tick := time.NewTimer(time.Hour)
	tick.Stop()
	var due time.Time // when tick fires; zero while it is stopped
	lastCheck := time.Now()
	for {
		// Armed for the next look that is due, and not pushed back by every event.
		if every := p.tickEvery(); every == 0 {
			tick.Stop()
			due = time.Time{}
		} else if at := time.Now().Add(every); due.IsZero() || at.Before(due) {
			tick.Reset(every)
			due = at
		}
		select {
		case sig := <-signals:
			p.onSignal(sig.(syscall.Signal))
		case fn := <-p.events:
			fn()
		case now := <-tick.C:
			due = time.Time{}
			p.endDrains(now)
			if now.Sub(lastCheck) >= recycleCheck {
				lastCheck = now
				p.recycleWhereDue()
			}
			if p.stopping && now.After(p.stopDeadline.Add(killWaitAfterDeadline)) {
				p.log.Warn("workers are still alive after the stop deadline; leaving them", "count", len(p.workers))
				return p.exitCode
			}
		}
		if p.stopping && len(p.workers) == 0 {
			return p.exitCode
		}
	}
}

// How often the pool looks at its workers when something may be due: a draining worker's
// sessions may be done, tender may be past its stop deadline, a worker past its memory or
// request limit. An idle pool with nothing of that kind does not wake at all.
const (
	drainCheck   = 20 * time.Millisecond
	recycleCheck = 500 * time.Millisecond
)

// tickEvery is how long Run may sleep before its next look at the workers; 0 for as long as
// nothing happens.
func (p *Pool) tickEvery() time.Duration {
	if p.stopping {
		return drainCheck
	}
	for w := range p.workers {
		if w.state == Draining {
			return drainCheck
		}
	}
	if p.cfg.MemoryLimit > 0 || p.cfg.MaxRequests > 0 {
		return recycleCheck
	}
	return 0
}

// Left is how long remains of the graceful stop: what is left of the container after the
// workers gets that long before SIGKILL.
func (p *Pool) Left() time.Duration {
	return max(time.Until(p.stopDeadline), 0)
}

// killWaitAfterDeadline bounds the wait for workers after their SIGKILL.
const killWaitAfterDeadline = 2 * time.Second

func (p *Pool) addSlot() *slot {
	s := &slot{id: len(p.slots), backoff: p.cfg.Backoff}
	p.slots = append(p.slots, s)
	p.spawn(s, false)
	return s
}

// spawn starts a worker for s; replacing says it replaces the one that serves s now.
func (p *Pool) spawn(s *slot, replacing bool) {
	p.seq++
	w := &worker{slot: s, seq: p.seq, state: Starting, started: time.Now(), tail: &Tail{},
		stop: make(chan struct{}), replacing: replacing}
	if replacing {
		s.next = w
	} else {
		s.worker = w
	}
	p.workers[w] = true
	if err := p.startProcess(w); err != nil {
		p.log.Error("cannot start a worker", "id", s.id, "error", err)
		// Handled as a worker that died at once, so that backoff and the budget apply.
		go p.post(func() { p.onExit(w, reaper.Exit{Status: unix.WaitStatus(ExitCannotExecute << 8)}) })
		return
	}
	// From now, not from when the start returns: a start may never return (a worker stopped
	// before its exec, an exec stuck on a dead NFS or FUSE path), and is timed out too.
	timeout := time.AfterFunc(p.cfg.StartTimeout, func() { p.post(func() { p.onStartTimeout(w) }) })
	go func() { <-w.stop; timeout.Stop() }()
}

// pidOf is w's pid, or while its start has not returned, the pid the kernel gave it (0 before
// the fork).
func (w *worker) pidOf() int {
	if w.pid != 0 {
		return w.pid
	}
	return w.birth.Pid()
}

// startProcess prepares the worker's port, notify socket and output pipes and starts it in
// the background; its exit comes back as an event.
func (p *Pool) startProcess(w *worker) error {
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
	env := append(append([]string(nil), p.cfg.Env...),
		"PORT="+strconv.Itoa(port),
		"TENDER_WORKER_ID="+strconv.Itoa(w.slot.id),
		"NOTIFY_SOCKET="+notify.name)
	w.birth = new(reaper.Birth)
	sp := Spawn{Args: p.cfg.Args, Env: env, Stdio: [3]int{p.devNull, outP[1], errP[1]}, Birth: w.birth}

	go func() {
		exits := make(chan reaper.Exit, 1)
		pid, err := p.spawner.Start(sp, exits)
		unix.Close(outP[1])
		unix.Close(errP[1])
		copied := make(chan struct{}, 2)
		for _, c := range []struct {
			fd  int
			out *Output
		}{{outP[0], p.stdout}, {errP[0], p.stderr}} {
			go func() {
				f := os.NewFile(uintptr(c.fd), "worker output")
				copyLines(f, c.out, w.tail)
				f.Close()
				copied <- struct{}{}
			}()
		}
		if pid == 0 {
			p.post(func() { p.onStartFailed(w, err) })
			<-copied
			<-copied
			return
		}
		p.post(func() { p.onStarted(w, pid, err) })
		exit := <-exits
		// The last lines belong in the report: wait for them, but not for a grandchild that
		// keeps the pipes open.
		for i := 0; i < 2; i++ {
			select {
			case <-copied:
			case <-time.After(100 * time.Millisecond):
			}
		}
		p.post(func() { p.onExit(w, exit) })
	}()
	return nil
}

func (p *Pool) onStartFailed(w *worker, err error) {
	p.log.Error("cannot start a worker", "id", w.slot.id, "error", err)
	p.onExit(w, reaper.Exit{Status: unix.WaitStatus(ExitCannotExecute << 8)})
}

func (p *Pool) onStarted(w *worker, pid int, err error) {
	w.pid = pid
	if !p.workers[w] {
		return
	}
	var se *StartError
	if errors.As(err, &se) {
		w.startErr = se // the process exits; the report comes with its exit
		return
	}
	p.log.Debug("worker started", "id", w.slot.id, "pid", pid, "port", w.port)
	if w.state == Stopping { // told to stop before its pid was known
		p.signalStop(w)
		return
	}
	ours := func() bool { return listensOn(pid, w.port, descendantPids) }
	go func() {
		if how := waitReady(w.stop, w.port, w.notify, ours); how != "" {
			p.post(func() { p.onReady(w, how) })
		}
	}()
}

func (p *Pool) onStartTimeout(w *worker) {
	if !p.workers[w] || w.state != Starting {
		return
	}
	p.log.Error("worker did not become ready in time: stopping it", "id", w.slot.id, "pid", w.pidOf(), "timeout", p.cfg.StartTimeout)
	w.reason = "did not become ready within " + p.cfg.StartTimeout.String()
	p.terminate(w)
	w.expected = false // a failed start: it counts against the budget and leaves a report
}

func (p *Pool) onReady(w *worker, how string) {
	if !p.workers[w] || w.state != Starting {
		return
	}
	s := w.slot
	w.state, w.readyAt, p.served = Ready, time.Now(), true
	s.portRetries = 0
	w.backend = balancer.NewBackend(s.id, net.JoinHostPort("127.0.0.1", strconv.Itoa(w.port)))
	w.backend.SetRoutable(true)
	p.router.Add(w.backend)
	p.log.Info("worker ready", "id", s.id, "pid", w.pid, "port", w.port, "via", how, "after", w.readyAt.Sub(w.started).Round(time.Millisecond))
	if w.replacing {
		old := s.worker
		s.worker, s.next, w.replacing = w, nil, false
		if old != nil {
			p.retire(old, w.reason)
		}
	}
	if p.cfg.HealthTimeout > 0 && how == readyPort {
		go p.watchHealth(w)
	}
	if s.crashLoop {
		p.watchRecovery(w)
	}
	go func() {
		if known, err := reaper.Descendants(w.pid); err == nil && len(known) > 0 {
			p.post(func() { w.known = known })
		}
	}()
	p.rollOnIfDone(s)
}

// watchHealth probes a ready worker until it leaves; a worker that failed every probe for
// TENDER_HEALTH_TIMEOUT is replaced.
func (p *Pool) watchHealth(w *worker) {
	interval := max(p.cfg.HealthTimeout/4, 100*time.Millisecond)
	lastOK := time.Now()
	for {
		select {
		case <-w.stop:
			return
		case <-time.After(interval):
		}
		err := probeHealth(w.port, p.cfg.HealthHTTP, interval)
		if err == nil {
			lastOK = time.Now()
			continue
		}
		if time.Since(lastOK) >= p.cfg.HealthTimeout {
			p.post(func() {
				p.replace(w, "stopped answering on its port for "+p.cfg.HealthTimeout.String()+": "+err.Error())
			})
			return
		}
	}
}

// replace starts a replacement for w, new before old: w serves until the new one is ready,
// then drains and stops. It reports whether a replacement started.
func (p *Pool) replace(w *worker, reason string) bool {
	s := w.slot
	if !p.workers[w] || p.stopping || s.worker != w || s.next != nil || s.retiring || w.state != Ready {
		return false
	}
	p.log.Info("replacing worker", "id", s.id, "pid", w.pid, "why", reason)
	w.reason = reason
	p.spawn(s, true)
	if s.next != nil {
		s.next.reason = reason
	}
	return true
}

// recycleWhereDue replaces the workers past TENDER_MEMORY_LIMIT or TENDER_MAX_REQUESTS.
func (p *Pool) recycleWhereDue() {
	for w := range p.workers {
		if w.state != Ready || w.slot.next != nil || w.kept {
			continue
		}
		if p.cfg.MemoryLimit > 0 {
			if mem := TreeMemory(w.pid); mem > p.cfg.MemoryLimit {
				p.replace(w, fmt.Sprintf("its memory %s (its process tree's) is past TENDER_MEMORY_LIMIT %s", mib(mem), mib(p.cfg.MemoryLimit)))
				continue
			}
		}
		if p.cfg.MaxRequests > 0 && w.backend.Processed() >= p.cfg.MaxRequests {
			p.replace(w, fmt.Sprintf("it served %d sessions (TENDER_MAX_REQUESTS)", w.backend.Processed()))
		}
	}
}

// retire takes w out of service: no new sessions, the ones in flight finish (until the
// drain deadline), then SIGTERM.
func (p *Pool) retire(w *worker, reason string) {
	switch w.state {
	case Ready:
		w.backend.SetRoutable(false)
		w.state = Draining
		w.drainedBy = time.Now().Add(p.cfg.StopTimeout)
		if p.stopping {
			w.drainedBy = p.drainDeadline()
		}
		p.log.Debug("draining worker", "id", w.slot.id, "pid", w.pid, "why", reason)
	case Starting:
		p.terminate(w)
	case Draining:
		if p.stopping && w.drainedBy.After(p.drainDeadline()) {
			w.drainedBy = p.drainDeadline()
		}
	}
}

// endDrains sends SIGTERM to the draining workers whose sessions are done or whose drain
// time is up.
func (p *Pool) endDrains(now time.Time) {
	for w := range p.workers {
		if w.state == Draining && (w.backend.Sessions() == 0 || now.After(w.drainedBy)) {
			p.terminate(w)
		}
	}
}

// terminate sends SIGTERM to the worker's process group, and SIGKILL after the grace (before
// the stop deadline, when stopping).
func (p *Pool) terminate(w *worker) {
	if w.state == Stopping {
		return
	}
	if w.backend != nil {
		w.backend.SetRoutable(false)
	}
	w.state, w.expected = Stopping, true
	if w.pidOf() != 0 { // otherwise onStarted does it once the pid is known
		p.signalStop(w)
	}
}

func (p *Pool) signalStop(w *worker) {
	if w.signaled {
		return
	}
	w.signaled = true
	grace := p.cfg.KillGrace
	if p.stopping {
		grace = max(min(grace, time.Until(p.stopDeadline)), 0)
	}
	p.log.Debug("stopping worker", "id", w.slot.id, "pid", w.pidOf(), "kill_after", grace.Round(time.Millisecond))
	_ = p.spawner.Reaper.Signal(w.pidOf(), unix.SIGTERM, true)
	time.AfterFunc(grace, func() {
		p.post(func() {
			if p.workers[w] {
				p.log.Warn("worker did not stop on SIGTERM; sending SIGKILL", "id", w.slot.id, "pid", w.pidOf(), "after", grace.Round(time.Millisecond))
				_ = p.spawner.Reaper.Signal(w.pidOf(), unix.SIGKILL, true)
			}
		})
	})
}

// afterExit drops a retired slot that has no worker left, and moves a rolling restart on.
func (p *Pool) afterExit(s *slot) {
	if s.retiring && s.worker == nil && s.next == nil {
		p.dropSlot(s)
	}
	p.rollOnIfDone(s)
	if !p.stopping && p.activeSlots() == 0 {
		p.log.Info("no worker is left to run; stopping")
		p.stop(p.exitCode)
	}
}

func (p *Pool) dropSlot(s *slot) {
	for i, x := range p.slots {
		if x == s {
			p.slots = append(p.slots[:i], p.slots[i+1:]...)
			return
		}
	}
}

// activeSlots counts the slots with a worker or a pending restart.
func (p *Pool) activeSlots() int {
	n := 0
	for _, s := range p.slots {
		if s.worker != nil || s.next != nil || s.waiting {
			n++
		}
	}
	return n
}

func (p *Pool) onSignal(sig syscall.Signal) {
	switch sig {
	case unix.SIGTERM, unix.SIGINT:
		if p.cfg.ShutdownDelay > 0 && !p.delaying && !p.stopping {
			// The endpoints may still route to this container: serve on, but say stopping.
			p.delaying = true
			p.log.Info("serving on for the shutdown delay, then stopping gracefully", "signal", reaper.SignalName(sig),
				"delay", p.cfg.ShutdownDelay, "within", p.cfg.StopTimeout)
			time.AfterFunc(p.cfg.ShutdownDelay, func() { p.post(func() { p.stop(0) }) })
			return
		}
		p.log.Info("stopping gracefully", "signal", reaper.SignalName(sig), "within", p.cfg.StopTimeout)
		p.stop(0)
	case unix.SIGHUP:
		p.RollingRestart()
	case unix.SIGTTIN:
		p.scale(p.wantedWorkers() + 1)
	case unix.SIGTTOU:
		p.scale(p.wantedWorkers() - 1)
	default:
		for w := range p.workers {
			if pid := w.pidOf(); pid != 0 {
				_ = p.spawner.Reaper.Signal(pid, sig, true)
			}
		}
	}
}

// stop begins the graceful stop: no new sessions, the ones in flight finish, then every
// worker gets SIGTERM, and SIGKILL at the stop deadline.
func (p *Pool) stop(code int) {
	if p.stopping {
		return
	}
	p.stopping, p.exitCode = true, code
	p.stopDeadline = time.Now().Add(p.cfg.StopTimeout)
	p.router.Close()
	p.rolling, p.rollingSlot = nil, nil
	for w := range p.workers {
		p.retire(w, "stopping")
	}
}

// drainDeadline is when draining workers get SIGTERM during a stop: early enough to leave
// them their grace before the stop deadline.
func (p *Pool) drainDeadline() time.Time {
	return p.stopDeadline.Add(-min(p.cfg.KillGrace, p.cfg.StopTimeout/2))
}

// RollingRestart replaces every worker, one at a time, new before old. During one already
// under way, the slot being rolled finishes first and is rolled once more at the end: its new
// worker may have been started before what the second restart is for (a deploy).
func (p *Pool) RollingRestart() {
	if p.stopping {
		return
	}
	p.log.Info("rolling restart of all workers")
	p.rolling = p.rolling[:0]
	for _, s := range p.slots {
		if s != p.rollingSlot {
			p.rolling = append(p.rolling, s)
		}
	}
	if p.rollingSlot != nil {
		p.rolling = append(p.rolling, p.rollingSlot)
	}
	p.rollOn()
}

// rollOn replaces the next worker of a rolling restart. Slots that are (re)starting anyway
// get a new worker without it.
func (p *Pool) rollOn() {
	for p.rollingSlot == nil && len(p.rolling) > 0 {
		s := p.rolling[0]
		p.rolling = p.rolling[1:]
		if s.worker != nil && p.replace(s.worker, "rolling restart") {
			p.rollingSlot = s
		}
	}
}

// rollOnIfDone moves a rolling restart on once the slot being rolled has its new worker ready
// and its old one gone: one at a time.
func (p *Pool) rollOnIfDone(s *slot) {
	if p.rollingSlot != s || s.next != nil || s.worker == nil || s.worker.state != Ready {
		return
	}
	for w := range p.workers {
		if w.slot == s && w != s.worker {
			return // the old one is still draining or stopping
		}
	}
	p.rollingSlot = nil
	p.rollOn()
}

func (p *Pool) wantedWorkers() int {
	n := 0
	for _, s := range p.slots {
		if !s.retiring {
			n++
		}
	}
	return n
}

// scale runs n workers: new slots start, the highest ones retire.
func (p *Pool) scale(n int) {
	if p.stopping || n < 1 {
		return
	}
	have := p.wantedWorkers()
	p.log.Info("scaling", "from", have, "to", n)
	for ; have < n; have++ {
		p.addSlot()
	}
	for i := len(p.slots) - 1; i >= 0 && have > n; i-- {
		s := p.slots[i]
		if s.retiring {
			continue
		}
		s.retiring = true
		have--
		for _, w := range []*worker{s.worker, s.next} {
			if w != nil {
				p.retire(w, "scaled down")
			}
		}
		p.afterExit(s)
	}
}

// Status is the pool's worker table, with what /proc says of each worker.
func (p *Pool) Status() Status {
	ch := make(chan Status, 1)
	p.post(func() { ch <- p.snapshot() })
	select {
	case st := <-ch:
		st.fillFromProc()
		return st
	case <-p.done:
		return Status{Workers: []WorkerStatus{}}
	}
}

// snapshot is the worker table as the pool's goroutine sees it: one line per live worker, and
// one per slot that waits to start its worker again.
func (p *Pool) snapshot() Status {
	st := Status{Workers: []WorkerStatus{}, Queue: p.router.QueueLen(), Tender: TenderStatus{Stopping: p.stopping || p.delaying}}
	for _, s := range p.slots {
		rows := 0
		for _, w := range []*worker{s.worker, s.next} {
			if w == nil {
				continue
			}
			rows++
			row := WorkerStatus{ID: s.id, Pid: w.pid, State: string(w.state), Restarts: s.restarts,
				UptimeSeconds: time.Since(w.started).Seconds(), CrashLoop: s.crashLoop, LastFailure: s.report}
			if w.backend != nil {
				row.Sessions, row.Processed = w.backend.Sessions(), w.backend.Processed()
			}
			st.Workers = append(st.Workers, row)
		}
		if rows == 0 {
			state := "exited"
			switch {
			case s.waiting && s.crashLoop:
				state = crashLoopState
			case s.waiting:
				state = backoffState
			}
			st.Workers = append(st.Workers, WorkerStatus{ID: s.id, State: state, Restarts: s.restarts,
				CrashLoop: s.crashLoop, LastFailure: s.report})
		}
	}
	// Workers that left their slot's service (draining, stopping) are still processes.
	for w := range p.workers {
		if w != w.slot.worker && w != w.slot.next {
			row := WorkerStatus{ID: w.slot.id, Pid: w.pid, State: string(w.state), Restarts: w.slot.restarts,
				UptimeSeconds: time.Since(w.started).Seconds()}
			if w.backend != nil {
				row.Sessions, row.Processed = w.backend.Sessions(), w.backend.Processed()
			}
			st.Workers = append(st.Workers, row)
		}
	}
	return st
}

// Restart makes a rolling restart, as SIGHUP does.
func (p *Pool) Restart() error {
	p.post(p.RollingRestart)
	return nil
}

// Scale runs n workers, as SIGTTIN and SIGTTOU do one at a time.
func (p *Pool) Scale(n int) error {
	if n < 1 {
		return fmt.Errorf("cannot scale to %d workers: at least 1", n)
	}
	p.post(func() { p.scale(n) })
	return nil
}
