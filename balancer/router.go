package balancer

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of Acquire: the session is answered 503 (HTTP) or closed (TCP).
var (
	ErrQueueFull    = errors.New("the queue is full")
	ErrQueueTimeout = errors.New("no worker was free in time")
	ErrClosed       = errors.New("tender is stopping")
)

// Router hands sessions to backends: to the routable one with the lowest busyness among
// those that answer (see StallLevel), or, when none has room, through one FIFO queue.
type Router struct {
	concurrency  int
	queueSize    int
	queueTimeout time.Duration
	now          func() int64 // monotonic nanoseconds: monotime, or a test's clock

	// typical is how long the workers take to answer a session, in nanoseconds: a running
	// median of the time from routing to the first byte of the answer; heard is when the
	// pool last answered one (monotime).
	typical atomic.Int64
	heard   atomic.Int64
	// targets learns which requests take long (http).
	targets slowTargets

	mu       sync.Mutex
	backends []*Backend
	queue    []*waiter
	start    int // where the next search starts, so that ties take turns
	closed   bool
}

type waiter struct {
	got     chan *Backend // one backend, or nil when the router closes
	exclude []*Backend
}

// NewRouter makes a router for workers taking concurrency sessions each (0 = unlimited).
func NewRouter(concurrency, queueSize int, queueTimeout time.Duration) *Router {
	return &Router{concurrency: concurrency, queueSize: queueSize, queueTimeout: queueTimeout, now: monotime}
}

// clockStart is where monotime counts from.
var clockStart = time.Now()

// monotime is a monotonic clock in nanoseconds, cheap enough to read once per session.
func monotime() int64 { return int64(time.Since(clockStart)) }

// Add makes b available for sessions once it is routable.
func (r *Router) Add(b *Backend) {
	r.mu.Lock()
	r.backends = append(r.backends, b)
	r.dispatchLocked(r.now())
	r.mu.Unlock()
}

// Remove forgets b; its sessions in flight go on until they end.
func (r *Router) Remove(b *Backend) {
	b.SetRoutable(false) // for a session that tried it: it is gone, not merely busy
	r.mu.Lock()
	r.backends = slices.DeleteFunc(r.backends, func(x *Backend) bool { return x == b })
	r.mu.Unlock()
	b.closeIdle()
}

// DropIdle closes the idle connections to every backend, to give their descriptors back.
func (r *Router) DropIdle() {
	r.mu.Lock()
	backends := slices.Clone(r.backends)
	r.mu.Unlock()
	for _, b := range backends {
		b.dropIdle()
	}
}

// QueueLen is the number of sessions waiting for a worker.
func (r *Router) QueueLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue)
}

// Acquire returns the backend for a new session, counted in its sessions, avoiding those in
// exclude (backends that just failed it). When no backend it may use has room the session
// waits in the queue, first come first served, up to the queue timeout.
func (r *Router) Acquire(exclude []*Backend) (*Backend, error) {
	return r.AcquireBy(exclude, time.Now().Add(r.queueTimeout))
}

// AcquireBy is Acquire for a session that may wait in the queue until deadline only (one that
// goes again after a failed try).
func (r *Router) AcquireBy(exclude []*Backend, deadline time.Time) (*Backend, error) {
	now := r.now()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	if len(r.queue) == 0 {
		if b := r.pickLocked(exclude, now); b != nil {
			r.mu.Unlock()
			return b, nil
		}
	}
	// In the queue behind the others; it may still go at once if those ahead are waiting only
	// for workers it does not exclude.
	w := &waiter{got: make(chan *Backend, 1), exclude: exclude}
	r.queue = append(r.queue, w)
	r.dispatchLocked(now)
	if n := len(r.queue); n > r.queueSize && r.queue[n-1] == w {
		r.queue = r.queue[:n-1]
		r.mu.Unlock()
		return nil, ErrQueueFull
	}
	r.mu.Unlock()

	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case b := <-w.got:
		if b == nil {
			return nil, ErrClosed
		}
		return b, nil
	case <-timer.C:
	}
	r.mu.Lock()
	queued := slices.Contains(r.queue, w)
	r.queue = slices.DeleteFunc(r.queue, func(x *waiter) bool { return x == w })
	r.mu.Unlock()
	if queued {
		return nil, ErrQueueTimeout
	}
	// Handed a backend just as the time ran out: take it.
	if b := <-w.got; b != nil {
		return b, nil
	}
	return nil, ErrClosed
}

// AnyBut reports whether a routable backend is there outside exclude, with room or not.
func (r *Router) AnyBut(exclude []*Backend) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.backends {
		if b.Routable() && !slices.Contains(exclude, b) {
			return true
		}
	}
	return false
}

// Release ends a session on b; done says it was served (it counts in processed), answered
// that Answered counted its answer. The freed room goes to the first session in the queue.
func (r *Router) Release(b *Backend, done, answered bool) {
	if done {
		b.processed.Add(1)
	}
	if !answered {
		b.dropped()
	}
	r.mu.Lock()
	b.sessions.Add(-1)
	if len(r.queue) > 0 {
		r.dispatchLocked(r.now())
	}
	r.mu.Unlock()
}

// Answered records that b answered a session routed to it at routedAt (monotime). The time
// it took moves the typical answer time a sixteenth of the way up or down, towards it: a
// running median, which a few answers behind a blocked event loop (each as long as the block)
// do not move, and which answers that all grow longer double in a dozen. A session that ends
// without an answer tells Release so.
func (r *Router) Answered(b *Backend, routedAt int64) {
	now := r.now()
	b.answered(routedAt, now)
	r.heard.Store(now)
	// Lossy: two answers at once may both read the same value, and one of them counts.
	if typical := r.typical.Load(); now-routedAt > typical {
		r.typical.Store(typical + max(typical/16, int64(time.Microsecond)))
	} else {
		r.typical.Store(typical - typical/16)
	}
}

// Given tells the router what b was given at routedAt: a request of the target key (see
// targetKey). It reports whether the target is slow, and then b counts as stalled until it
// answers the request, or one given after it (see slowTargets).
func (r *Router) Given(b *Backend, key uint32, routedAt int64) bool {
	expected := r.targets.expected(key)
	slow := expected > StallAfter(time.Duration(r.typical.Load()))
	if slow {
		b.slowFor.Store(int64(expected))
		b.slowGiven.Store(routedAt)
	}
	return slow
}

// AnsweredTarget is Answered for a request of the target key, whose time it learns.
func (r *Router) AnsweredTarget(b *Backend, key uint32, routedAt int64) {
	r.Answered(b, routedAt)
	r.targets.learn(key, time.Duration(r.now()-routedAt))
}

// Unanswered says that the slow request b was given at routedAt ended without an answer: it
// does not hold b any more.
func (r *Router) Unanswered(b *Backend, routedAt int64) {
	b.slowGiven.CompareAndSwap(routedAt, 0)
}

// Now is the router's clock, for the routedAt of Answered.
func (r *Router) Now() int64 { return r.now() }

// Close fails every queued session and every later Acquire: tender is stopping.
func (r *Router) Close() {
	r.mu.Lock()
	r.closed = true
	for _, w := range r.queue {
		w.got <- nil
	}
	r.queue = nil
	r.mu.Unlock()
}

// dispatchLocked gives free room to queued sessions, in order. A session that excludes the
// workers with room (they just failed it) lets those behind it go first, rather than holding up
// the whole queue; one that excludes nothing and finds no room means there is none for anyone.
func (r *Router) dispatchLocked(now int64) {
	left := r.queue[:0]
	for i, w := range r.queue {
		if b := r.pickLocked(w.exclude, now); b != nil {
			w.got <- b
			continue
		}
		left = append(left, w)
		if len(w.exclude) == 0 {
			left = append(left, r.queue[i+1:]...)
			break
		}
	}
	clear(r.queue[len(left):])
	r.queue = left
}

// pickLocked takes the routable backend with room for one more session of the lowest
// StallLevel (0: it answers), and of those the least busy, and counts the session in it.
// Among equals, the search starts one further each time, so that they take turns.
//
// The session is counted before the backend is found routable once more: the pool stops a
// draining worker once it has made it unroutable and then found no session on it, and one of
// the two orders always sees the other's write. Counted after the one look, a session could
// go to a worker being stopped.
func (r *Router) pickLocked(exclude []*Backend, now int64) *Backend {
	for {
		b := r.bestLocked(exclude, now)
		if b == nil {
			return nil
		}
		b.sessions.Add(1)
		if b.Routable() {
			r.start = (r.start + 1) % len(r.backends)
			b.given(now)
			return b
		}
		b.sessions.Add(-1)
	}
}

// bestLocked finds the routable backend with room for one more session of the lowest
// StallLevel, and of those the least busy.
func (r *Router) bestLocked(exclude []*Backend, now int64) *Backend {
	n := len(r.backends)
	typical, heard := time.Duration(r.typical.Load()), r.heard.Load()
	var best *Backend
	var bestBusy int64
	var bestLevel int
	for i := 0; i < n; i++ {
		b := r.backends[(r.start+i)%n]
		if !b.Routable() || slices.Contains(exclude, b) {
			continue
		}
		s := b.sessions.Load()
		if Full(s, r.concurrency) {
			continue
		}
		level := b.stallLevel(s, now, heard, typical)
		busy := Busyness(s, r.concurrency)
		if best == nil || level < bestLevel || level == bestLevel && busy < bestBusy {
			best, bestBusy, bestLevel = b, busy, level
		}
	}
	return best
}
