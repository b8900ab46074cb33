package apps

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/balancer"
	"github.com/tenderinit/tender/capabilities"
	"github.com/tenderinit/tender/config"
	"github.com/tenderinit/tender/procfile"
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
	// Types are the process types the pool runs, each a Group. Pool mode without a Procfile
	// is one type, web, running COMMAND.
	Types         []TypeConfig
	Env           []string
	StartTimeout  time.Duration
	StopTimeout   time.Duration
	KillGrace     time.Duration
	HealthTimeout time.Duration
	ShutdownDelay time.Duration
	HealthHTTP    bool // probe health with OPTIONS * rather than the listen queue
	MemoryLimit   uint64
	MaxRequests   uint64
	// MaxRequestsJitter and MaxLifetime stagger recycling: see worker.limits.
	MaxRequestsJitter uint64
	MaxLifetime       time.Duration
	// StopSignal asks a worker to stop (TENDER_STOP_SIGNAL); SIGTERM when 0.
	StopSignal syscall.Signal
	// Watchdog is WATCHDOG_USEC: a worker that pinged and then fell silent this long is
	// replaced; 0 is off.
	Watchdog time.Duration
	Restart  config.RestartPolicy
	Backoff  Backoff // the template of every slot's backoff
	// OOM tells an exit by SIGKILL from the OOM killer's; nil tells none.
	OOM *capabilities.OOMWatch
	// OutputLabels starts each line of the workers' output with its worker (web.0 | ...), or
	// with OutputJSON makes it a JSON object (see lineLabel).
	OutputLabels bool
	OutputJSON   bool
}

// TypeConfig is one process type: its name, its command and how many of its processes run.
type TypeConfig struct {
	Name string
	// Args is a command run as given (COMMAND); Command a Procfile's command line, made into
	// arguments at each start (see Group.argv).
	Args    []string
	Command string
	Count   int
}

// Pool runs the process types of the app, each a Group of workers, and watches over them
// like Passenger's watchdog: clean starts, restarts with backoff, recycling on memory and
// request count, rolling restarts, graceful stop. The pool itself owns what concerns them
// all: signals, control requests, the stop and tender's exit status. One goroutine, Run's,
// owns every group, slot and worker; everything else talks to it through events.
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
	// labelWidth is the width of the workers' output labels (see lineLabel).
	labelWidth int

	events  chan func()
	done    chan struct{} // closed when Run returns
	groups  []*Group      // the process types, in the Procfile's order
	release *Group        // the release phase (release.go), nil without one
	// groupsStarted: the groups but the release phase have started.
	groupsStarted bool
	workers       map[*worker]bool // every live process, of every group
	seq           int

	stopping bool
	// recycling is the worker being recycled now, one at a time (recycleWhereDue).
	recycling *worker
	// delaying: SIGTERM or SIGINT came, and the pool serves on for TENDER_SHUTDOWN_DELAY
	// while it reports itself stopping.
	delaying     bool
	stopDeadline time.Time
	exitCode     int
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
	p := &Pool{
		cfg: cfg, spawner: spawner, router: router, log: log,
		stdout: NewOutput(Stdout), stderr: NewOutput(Stderr),
		oom: cfg.OOM, devNull: devNull, ports: newPortPicker(log), labelWidth: labelWidth(cfg.Types),
		events: make(chan func(), 64), done: make(chan struct{}), workers: map[*worker]bool{},
	}
	p.newGroups(cfg.Types)
	return p, nil
}

// lineLabel is the label of the lines that the worker of s writes on stream, nil when the
// output is not labelled.
func (p *Pool) lineLabel(s *slot, stream string) *lineLabel {
	if !p.cfg.OutputLabels {
		return nil
	}
	return newLineLabel(s.g.name, s.id, stream, p.labelWidth, p.cfg.OutputJSON)
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

// Run starts the release phase, if any, then the workers of every type, and watches over them
// until a stop signal has ended them all, no worker can serve, or a type cannot run at all. It
// returns tender's exit status: 0 after a graceful stop, 1 after a crash loop, a failed
// release phase's status.
func (p *Pool) Run(signals <-chan os.Signal) int {
	defer close(p.done)
	if p.release != nil {
		p.startRelease()
	} else {
		p.startGroups()
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
	asked := false // a worker sent STOPPING=1 and waits for its turn
	for w := range p.workers {
		if w.state == Draining {
			return drainCheck
		}
		asked = asked || w.stopping && w.state == Ready && !w.kept
	}
	if p.cfg.MemoryLimit > 0 || p.cfg.MaxRequests > 0 || p.cfg.MaxLifetime > 0 || asked {
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

// endDrains sends SIGTERM to the draining workers whose sessions are done or whose drain
// time is up.
func (p *Pool) endDrains(now time.Time) {
	for w := range p.workers {
		if w.state == Draining && (w.backend.Sessions() == 0 || now.After(w.drainedBy)) {
			w.terminate()
		}
	}
}

// recycleWhereDue replaces a worker past its limits (TENDER_MEMORY_LIMIT, its share of
// TENDER_MAX_REQUESTS and TENDER_MAX_LIFETIME) or that asked for it (STOPPING=1): one at a
// time in the whole pool, and none during a rolling restart, so that workers due together are
// recycled one after the other and the container never holds twice its processes. The others
// wait for the next look.
func (p *Pool) recycleWhereDue() {
	if p.recycling != nil && p.workers[p.recycling] {
		return
	}
	p.recycling = nil
	for _, g := range p.groups {
		if g.rollingSlot != nil {
			return
		}
	}
	var tree processes // one read of /proc weighs every worker
	if p.cfg.MemoryLimit > 0 {
		tree = readProcesses()
	}
	for w := range p.workers {
		if w.state != Ready || w.slot.next != nil || w.kept {
			continue
		}
		if why := w.pastLimits(tree); why != "" && w.slot.g.replace(w, why) {
			p.recycling = w
			return
		}
	}
}

// stopIfNoneLeft ends the pool once no slot of any group has a worker or a restart to come
// (TENDER_RESTART=never or on-failure, or scaled away).
func (p *Pool) stopIfNoneLeft() {
	if p.stopping {
		return
	}
	for _, g := range p.groups {
		if g.activeSlots() > 0 {
			return
		}
	}
	p.log.Info("no worker is left to run; stopping")
	p.stop(p.exitCode)
}

func (p *Pool) onSignal(sig syscall.Signal) {
	switch sig {
	case unix.SIGTERM, unix.SIGINT:
		if p.cfg.ShutdownDelay > 0 && !p.delaying && !p.stopping && !p.releasing() {
			// The endpoints may still route to this container: serve on, but say stopping.
			p.delaying = true
			p.log.Info("serving on for the shutdown delay, then stopping gracefully", "signal", reaper.SignalName(sig),
				"delay", p.cfg.ShutdownDelay, "within", p.cfg.StopTimeout)
			time.AfterFunc(p.cfg.ShutdownDelay, func() { p.post(func() { p.stop(0) }) })
			return
		}
		p.log.Info("stopping gracefully", "signal", reaper.SignalName(sig), "within", p.cfg.StopTimeout)
		p.stop(0)
	case unix.SIGHUP, unix.SIGTTIN, unix.SIGTTOU:
		if p.releasing() { // the release phase's own: there is nothing to roll or scale yet
			p.forward(sig)
			return
		}
		if sig == unix.SIGHUP {
			p.RollingRestart()
			return
		}
		g, err := p.group("")
		if err != nil {
			p.log.Warn("not scaling on "+reaper.SignalName(sig), "error", err)
			return
		}
		if sig == unix.SIGTTIN {
			g.scale(g.wanted() + 1)
		} else {
			g.scale(g.wanted() - 1)
		}
	default:
		p.forward(sig)
	}
}

// forward sends sig to every worker's process group.
func (p *Pool) forward(sig syscall.Signal) {
	for w := range p.workers {
		if pid := w.pidOf(); pid != 0 {
			_ = p.spawner.Reaper.Signal(pid, sig, true)
		}
	}
}

// group is the group of process type name; for "", the one that scaling without a type
// means: web, or the only type.
func (p *Pool) group(name string) (*Group, error) {
	var names []string
	for _, g := range p.groups {
		if g.name == name || name == "" && (g.web || len(p.groups) == 1) {
			return g, nil
		}
		names = append(names, g.name)
	}
	switch {
	case name == "":
		return nil, fmt.Errorf("tender runs several process types and none is web: name one (tender scale TYPE=N; types: %s)", strings.Join(names, ", "))
	case name == procfile.Release:
		return nil, errors.New("the release type runs once, before the others: it is neither restarted nor scaled")
	}
	return nil, fmt.Errorf("no process type %q: the types are %s", name, strings.Join(names, ", "))
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
	for _, g := range p.groups {
		g.rolling, g.rollingSlot = nil, nil
	}
	for w := range p.workers {
		w.retire("stopping")
	}
}

// drainDeadline is when draining workers get SIGTERM during a stop: early enough to leave
// them their grace before the stop deadline.
func (p *Pool) drainDeadline() time.Time {
	return p.stopDeadline.Add(-min(p.cfg.KillGrace, p.cfg.StopTimeout/2))
}

// RollingRestart replaces every worker, one at a time, new before old (see
// Group.rollingRestart).
func (p *Pool) RollingRestart() {
	if p.stopping {
		return
	}
	p.log.Info("rolling restart of all workers")
	for _, g := range p.groups {
		g.rollingRestart()
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

// snapshot is the worker table as the pool's goroutine sees it: the rows of every group, then
// the workers that left their slot's service (draining, stopping), which are still processes.
func (p *Pool) snapshot() Status {
	st := Status{Workers: []WorkerStatus{}, Queue: p.router.QueueLen(), Tender: TenderStatus{Stopping: p.stopping || p.delaying}}
	if p.release != nil && !p.groupsStarted { // while it runs, and while it is stopped
		st.Workers = append(st.Workers, p.release.rows()...)
	}
	for _, g := range p.groups {
		st.Workers = append(st.Workers, g.rows()...)
	}
	for w := range p.workers {
		if w != w.slot.worker && w != w.slot.next {
			st.Workers = append(st.Workers, w.row())
		}
	}
	return st
}

// Restart makes a rolling restart of the workers of process type typ, or of every type for
// "", as SIGHUP does. The groups are made once, in NewPool: their names may be read here.
func (p *Pool) Restart(typ string) error {
	if typ == "" {
		p.post(p.RollingRestart)
		return nil
	}
	g, err := p.group(typ)
	if err != nil {
		return err
	}
	p.post(func() {
		if !p.stopping {
			p.log.Info("rolling restart", "type", g.name)
			g.rollingRestart()
		}
	})
	return nil
}

// Scale runs n workers of process type typ ("": web, or the only type), as SIGTTIN and
// SIGTTOU do one at a time.
func (p *Pool) Scale(typ string, n int) error {
	if n < 1 {
		return fmt.Errorf("cannot scale to %d workers: at least 1", n)
	}
	g, err := p.group(typ)
	if err != nil {
		return err
	}
	p.post(func() { g.scale(n) })
	return nil
}
