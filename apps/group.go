package apps

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tenderinit/tender/procfile"
)

// Group is one process type of the pool, as Passenger's Group is one app's processes: as many
// slots as its count, each with its worker, and what is done to them as a set (replacing one
// new before old, rolling restarts one slot at a time, scaling). Its crash loops are in
// crashloop.go, its workers' exits in exits.go. The pool's goroutine owns it.
//
// The web type is the one behind the balancer: its workers are ready when their port accepts
// (or they send READY=1). A worker of another type serves no port: it is running once it has
// stayed up for TENDER_MIN_UPTIME, the uptime after which the backoff counts a process stable,
// or ready when it sends READY=1. Once one of its type has sent READY=1, the type's workers
// are awaited by READY=1 alone, within TENDER_START_TIMEOUT.
type Group struct {
	p    *Pool
	name string
	web  bool
	// args is COMMAND, run as given; command a Procfile's command, made into arguments at
	// every start, from that worker's own environment.
	args    []string
	command string
	count   int // the workers it starts with
	slots   []*slot
	// served: a worker of the group has been ready once.
	served bool
	// sendsReady: a worker of the type sent READY=1, so its workers are awaited by it.
	sendsReady bool

	rolling     []*slot // slots waiting for their turn in a rolling restart
	rollingSlot *slot   // the slot being rolled now
}

func newGroup(p *Pool, t TypeConfig) *Group {
	return &Group{p: p, name: t.Name, web: t.Name == procfile.Web, args: t.Args, command: t.Command, count: t.Count}
}

// argv is what a worker of the group runs, in its environment env: COMMAND as given, or the
// Procfile's command with $NAME and ${NAME} expanded from env, under /bin/sh -c when it uses
// more of sh's syntax. Such a command needs /bin/sh, which a distroless image lacks: a
// *StartError then, 127 as a shell's "not found".
func (g *Group) argv(env []string) ([]string, error) {
	if g.command == "" {
		return g.args, nil
	}
	c := procfile.ParseCommand(g.command, env)
	if c.Shell != "" {
		if _, err := os.Stat(c.Args[0]); err != nil {
			return nil, &StartError{Step: "shell", Code: ExitNotFound,
				Msg: fmt.Sprintf("the command of process type %s needs a shell (it uses %s), and there is none: %v", g.name, c.Shell, err)}
		}
	}
	return c.Args, nil
}

// slot is a place for one worker: its TENDER_WORKER_ID, its backoff and its last failure.
type slot struct {
	g        *Group
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

// logArgs are the key-value pairs of a log line about s: its id and type first, then kv.
func (s *slot) logArgs(kv ...any) []any {
	return append([]any{"id", s.id, "type", s.g.name}, kv...)
}

// start starts the group's workers.
func (g *Group) start() {
	for i := 0; i < g.count; i++ {
		g.addSlot()
	}
}

func (g *Group) addSlot() *slot {
	s := &slot{g: g, id: len(g.slots), backoff: g.p.cfg.Backoff}
	g.slots = append(g.slots, s)
	g.spawn(s, false)
	return s
}

// spawn starts a worker for s; replacing says it replaces the one that serves s now.
func (g *Group) spawn(s *slot, replacing bool) {
	p := g.p
	p.seq++
	w := &worker{p: p, slot: s, seq: p.seq, state: Starting, started: time.Now(), tail: &Tail{},
		stop: make(chan struct{}), replacing: replacing}
	w.limits(p.cfg)
	if replacing {
		s.next = w
	} else {
		s.worker = w
	}
	p.workers[w] = true
	if err := w.start(); err != nil {
		p.log.Error("cannot start a worker", s.logArgs("error", err)...)
		// Handled as a worker that died at once, so that backoff and the budget apply; one
		// that can never start (a shell command without a shell) as a failed clean start.
		exit := exitCannotExecute
		var se *StartError
		if errors.As(err, &se) {
			w.startErr, exit = se, exitStatus(se.Code)
		}
		go p.post(func() { g.onExit(w, exit) })
		return
	}
	if !g.web && !g.sendsReady {
		return // it has only to stay up: no port to wait for, no READY=1
	}
	// From now, not from when the start returns: a start may never return (a worker stopped
	// before its exec, an exec stuck on a dead NFS or FUSE path), and is timed out too.
	timeout := time.AfterFunc(p.cfg.StartTimeout, func() { p.post(w.onStartTimeout) })
	go func() { <-w.stop; timeout.Stop() }()
}

// replace starts a replacement for w, new before old: w serves until the new one is ready,
// then drains and stops. It reports whether a replacement started.
func (g *Group) replace(w *worker, reason string) bool {
	s := w.slot
	if !g.p.workers[w] || g.p.stopping || s.worker != w || s.next != nil || s.retiring || w.state != Ready || g.isRelease() {
		return false
	}
	g.p.log.Info("replacing worker", s.logArgs("pid", w.pid, "why", reason)...)
	w.reason = reason
	g.spawn(s, true)
	if s.next != nil {
		s.next.reason = reason
	}
	return true
}

// afterExit drops a retired slot that has no worker left, moves a rolling restart on, and
// ends the pool when nothing is left to run.
func (g *Group) afterExit(s *slot) {
	if s.retiring && s.worker == nil && s.next == nil {
		g.dropSlot(s)
	}
	g.rollOnIfDone(s)
	g.p.stopIfNoneLeft()
}

func (g *Group) dropSlot(s *slot) {
	for i, x := range g.slots {
		if x == s {
			g.slots = append(g.slots[:i], g.slots[i+1:]...)
			return
		}
	}
}

// activeSlots counts the slots with a worker or a pending restart.
func (g *Group) activeSlots() int {
	n := 0
	for _, s := range g.slots {
		if s.worker != nil || s.next != nil || s.waiting {
			n++
		}
	}
	return n
}

// rollingRestart replaces every worker of the group, one at a time, new before old. During
// one already under way, the slot being rolled finishes first and is rolled once more at the
// end: its new worker may have been started before what the second restart is for (a deploy).
func (g *Group) rollingRestart() {
	g.rolling = g.rolling[:0]
	for _, s := range g.slots {
		if s != g.rollingSlot {
			g.rolling = append(g.rolling, s)
		}
	}
	if g.rollingSlot != nil {
		g.rolling = append(g.rolling, g.rollingSlot)
	}
	g.rollOn()
}

// rollOn replaces the next worker of a rolling restart. Slots that are (re)starting anyway
// get a new worker without it.
func (g *Group) rollOn() {
	for g.rollingSlot == nil && len(g.rolling) > 0 {
		s := g.rolling[0]
		g.rolling = g.rolling[1:]
		if s.worker != nil && g.replace(s.worker, "rolling restart") {
			g.rollingSlot = s
		}
	}
}

// rollOnIfDone moves a rolling restart on once the slot being rolled has its new worker ready
// and its old one gone: one at a time.
func (g *Group) rollOnIfDone(s *slot) {
	if g.rollingSlot != s || s.next != nil || s.worker == nil || s.worker.state != Ready {
		return
	}
	for w := range g.p.workers {
		if w.slot == s && w != s.worker {
			return // the old one is still draining or stopping
		}
	}
	g.rollingSlot = nil
	g.rollOn()
}

// wanted is how many workers the group is to run: its slots but those scaled away.
func (g *Group) wanted() int {
	n := 0
	for _, s := range g.slots {
		if !s.retiring {
			n++
		}
	}
	return n
}

// scale runs n workers: new slots start, the highest ones retire.
func (g *Group) scale(n int) {
	if g.p.releasing() {
		g.p.log.Warn("not scaling during the release phase", "type", g.name, "to", n)
		return
	}
	if g.p.stopping || n < 1 {
		return
	}
	have := g.wanted()
	g.p.log.Info("scaling", "type", g.name, "from", have, "to", n)
	for ; have < n; have++ {
		g.addSlot()
	}
	for i := len(g.slots) - 1; i >= 0 && have > n; i-- {
		s := g.slots[i]
		if s.retiring {
			continue
		}
		s.retiring = true
		have--
		for _, w := range []*worker{s.worker, s.next} {
			if w != nil {
				w.retire("scaled down")
			}
		}
		g.afterExit(s)
	}
}

// rows are the group's lines of the worker table: one per live worker of a slot, and one per
// slot that waits to start its worker again.
func (g *Group) rows() []WorkerStatus {
	var rows []WorkerStatus
	for _, s := range g.slots {
		n := 0
		for _, w := range []*worker{s.worker, s.next} {
			if w != nil {
				n++
				row := w.row()
				row.CrashLoop, row.LastFailure = s.crashLoop, s.report
				rows = append(rows, row)
			}
		}
		if n == 0 {
			state := "exited"
			switch {
			case s.waiting && s.crashLoop:
				state = crashLoopState
			case s.waiting:
				state = backoffState
			}
			rows = append(rows, WorkerStatus{ID: s.id, Type: g.name, State: state, Restarts: s.restarts,
				CrashLoop: s.crashLoop, LastFailure: s.report})
		}
	}
	return rows
}
