// Package balancer is tender's front socket: it routes each new session to the ready worker
// with the fewest sessions in flight.
package balancer

import (
	"bufio"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Backend is one worker as the balancer sees it. The pool creates it and says when it may
// take sessions; the balancer counts the sessions and keeps idle keep-alive connections to it.
type Backend struct {
	ID   int    // the worker's TENDER_WORKER_ID
	Addr string // where the worker listens: 127.0.0.1:PORT

	routable  atomic.Bool
	sessions  atomic.Int64
	processed atomic.Uint64
	// Whether the worker answers (see StallLevel), kept without a lock, so that answers, many a
	// millisecond, do not queue for the router's: unanswered counts its sessions in flight
	// that have no answer yet, and the times (monotime) are when it last began to owe one (its
	// unanswered went from 0 to 1), last answered one and was last given one.
	unanswered atomic.Int64
	owingSince atomic.Int64
	lastAnswer atomic.Int64
	lastGiven  atomic.Int64
	// slowGiven is when it was given a request of a slow target (see slowTargets) that it has
	// not answered, nor one given after it (0: none), and slowFor how long that target's
	// answers take.
	slowGiven atomic.Int64
	slowFor   atomic.Int64

	mu     sync.Mutex
	idle   []*upstream // oldest first
	closed bool
	// sweep closes the idle connections past idleTTL, which a worker has likely closed on its
	// side (each left in CLOSE-WAIT, a descriptor held for nothing); armed only while some are
	// idle, so that an idle tender does not wake.
	sweep *time.Timer
}

// NewBackend makes a backend that takes no sessions until SetRoutable(true).
func NewBackend(id int, addr string) *Backend { return &Backend{ID: id, Addr: addr} }

// SetRoutable says whether new sessions may go to the backend (ready and not draining).
func (b *Backend) SetRoutable(ok bool) { b.routable.Store(ok) }

// Routable reports whether new sessions may go to the backend.
func (b *Backend) Routable() bool { return b.routable.Load() }

// Sessions is the number of sessions in flight.
func (b *Backend) Sessions() int64 { return b.sessions.Load() }

// Processed is the number of sessions the backend has finished.
func (b *Backend) Processed() uint64 { return b.processed.Load() }

// given counts a session given to the backend at now; the router holds its lock.
func (b *Backend) given(now int64) {
	b.lastGiven.Store(now)
	if b.unanswered.Add(1) == 1 {
		b.owingSince.Store(now)
	}
}

// answered counts the answer to one of its sessions, given at routedAt, at now. The answer to a
// slow target's request, or to one given after it, shows that it did not block the worker.
func (b *Backend) answered(routedAt, now int64) {
	b.unanswered.Add(-1)
	b.lastAnswer.Store(now)
	if slow := b.slowGiven.Load(); slow != 0 && routedAt >= slow {
		b.slowGiven.CompareAndSwap(slow, 0)
	}
}

// dropped counts a session that ended without an answer: the worker owes it no more.
func (b *Backend) dropped() { b.unanswered.Add(-1) }

// stallLevel is the backend's StallLevel at now; heard is when the pool last heard an answer.
// Its sessions owed an answer are at most its sessions: one that ended between the two counts
// is gone.
func (b *Backend) stallLevel(sessions, now, heard int64, typical time.Duration) int {
	silentSince := max(b.lastAnswer.Load(), b.owingSince.Load())
	var slowFor int64
	if b.slowGiven.Load() != 0 {
		slowFor = b.slowFor.Load()
	}
	return StallLevel(min(b.unanswered.Load(), sessions), time.Duration(now-silentSince), heard > silentSince,
		time.Duration(slowFor), time.Duration(now-b.lastGiven.Load()), typical)
}

// upstream is a connection to a backend, with its read buffer.
type upstream struct {
	conn      net.Conn
	br        *bufio.Reader // reads through io
	io        workerIO
	idleSince time.Time
	reused    bool // it served a request before: it may have been closed by the worker since

	// raw and peekFn let quiet look at the socket without an allocation per reuse; open is
	// peekFn's answer.
	raw    syscall.RawConn
	peekFn func(fd uintptr) bool
	open   bool
}

const (
	// maxIdle is how many idle connections to one backend are kept for reuse.
	maxIdle = 256
	// idleTTL is how long an idle connection is trusted: app servers close theirs after a few
	// seconds (Node's keepAliveTimeout is 5s), and a connection closed under us costs a retry.
	idleTTL = 2 * time.Second
	// dialTimeout bounds a connect to a worker on loopback.
	dialTimeout = 2 * time.Second
	// freshIdle: see connect.
	freshIdle = time.Millisecond
)

// connect returns an idle connection to the backend that is still open and quiet, or a new one.
// The newest idle connection is taken first: it is the likeliest to be still open. The socket
// is peeked outside the lock, so that sessions to the same worker do not queue on a system call.
//
// A connection idle for less than freshIdle is not peeked for a request that may go again
// (idempotent, and whole in tender's hands): a worker that closed it in that moment makes the
// request go again on a new connection, as one that closed it during the peek would, and bytes
// it sent unasked after its answer would have had to come within the moment to be seen. Under
// load that is most requests, and the peek was a tenth of tender's system calls.
func (b *Backend) connect(retryable bool) (*upstream, error) {
	now := time.Now()
	for {
		b.mu.Lock()
		n := len(b.idle)
		if n == 0 {
			b.mu.Unlock()
			break
		}
		u := b.idle[n-1]
		b.idle[n-1] = nil
		b.idle = b.idle[:n-1]
		b.mu.Unlock()
		if idle := now.Sub(u.idleSince); idle < idleTTL && (retryable && idle < freshIdle || u.quiet()) {
			u.reused = true
			return u, nil
		}
		u.conn.Close()
	}
	c, err := b.dial()
	if err != nil {
		return nil, err
	}
	u := &upstream{conn: c, io: workerIO{conn: c}}
	u.br = bufio.NewReaderSize(&u.io, 16<<10)
	if u.raw, err = c.(syscall.Conn).SyscallConn(); err != nil {
		c.Close()
		return nil, err
	}
	u.peekFn = u.peek
	return u, nil
}

// dial connects to the worker. Without TCP keep-alive probes, which Go's dialer turns on by
// default, four system calls per connection: on loopback, a worker that dies closes its
// connections, and tender's pool sees its exit.
func (b *Backend) dial() (net.Conn, error) {
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: -1}
	return d.Dial("tcp", b.Addr)
}

// answers reports whether the backend's port accepts a connection: a worker that closed a
// connection without an answer and still answers is alive; one that died, or is stopping, has
// closed its port.
func (b *Backend) answers() bool {
	c, err := b.dial()
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// slidingDeadline keeps a connection's deadline a timeout ahead of the last read or write. It
// is moved on only once a tenth of the timeout has passed (setting one costs a timer update),
// to the timeout and a tenth ahead: a silence is never cut short of the timeout, and at most a
// tenth past it.
type slidingDeadline struct{ moved time.Time }

// next is the deadline to set now, if one is due.
func (d *slidingDeadline) next(timeout time.Duration) (time.Time, bool) {
	now := time.Now()
	if now.Sub(d.moved) < timeout/10 {
		return time.Time{}, false
	}
	d.moved = now
	return now.Add(timeout + timeout/10), true
}

// workerIO is how tender reads an upstream (its buffer reads through it) and writes a request
// to it. With TENDER_WORKER_TIMEOUT, a worker that has the whole request may stay silent for
// at most the timeout before its response's head and between two reads of its body (nginx's
// proxy_read_timeout), and a worker may leave a write of the request unread for as long
// (proxy_send_timeout).
type workerIO struct {
	conn    net.Conn
	timeout time.Duration // set by the exchange before it writes
	armed   atomic.Bool   // a read deadline runs; arm may run beside a Read (the body's copy)
	wrote   bool          // a write deadline was set
	// each used by one goroutine at a time
	read, write slidingDeadline
}

// errWorkerStalled is a write of the request that the worker left unread for the timeout.
var errWorkerStalled = errors.New("the worker stopped reading the request")

func (w *workerIO) Read(p []byte) (int, error) {
	if w.armed.Load() {
		if t, due := w.read.next(w.timeout); due {
			_ = w.conn.SetReadDeadline(t)
		}
	}
	return w.conn.Read(p)
}

func (w *workerIO) Write(p []byte) (int, error) {
	if w.timeout > 0 {
		if t, due := w.write.next(w.timeout); due {
			_ = w.conn.SetWriteDeadline(t)
			w.wrote = true
		}
	}
	n, err := w.conn.Write(p)
	if err != nil && isTimeout(err) {
		err = errWorkerStalled
	}
	return n, err
}

// arm starts the clock of the answer, once the worker has the whole request.
func (w *workerIO) arm() {
	if w.timeout > 0 {
		_ = w.conn.SetReadDeadline(time.Now().Add(w.timeout))
		w.armed.Store(true)
	}
}

// disarm stops the clocks: for a tunnel, which has timeouts of its own, or a connection that
// goes idle (a deadline left on it would fail its next use).
func (w *workerIO) disarm() {
	if w.armed.Swap(false) {
		_ = w.conn.SetReadDeadline(time.Time{})
	}
	if w.wrote {
		_ = w.conn.SetWriteDeadline(time.Time{})
		w.wrote = false
	}
}

// release keeps u for reuse, or closes it. A connection with bytes beyond the response it
// carried (a worker that sent a body after a HEAD, say) is closed: the bytes are no answer to
// the next request.
func (b *Backend) release(u *upstream) {
	u.io.disarm()
	u.idleSince = time.Now()
	b.mu.Lock()
	if b.closed || len(b.idle) >= maxIdle || !b.routable.Load() || u.br.Buffered() > 0 {
		b.mu.Unlock()
		u.conn.Close()
		return
	}
	b.idle = append(b.idle, u)
	if b.sweep == nil {
		b.sweep = time.AfterFunc(idleTTL, b.sweepIdle)
	}
	b.mu.Unlock()
}

// sweepIdle closes the idle connections past idleTTL, and comes back when the oldest of the
// others is.
func (b *Backend) sweepIdle() {
	now := time.Now()
	b.mu.Lock()
	n := 0
	for n < len(b.idle) && now.Sub(b.idle[n].idleSince) >= idleTTL {
		n++
	}
	expired := slices.Clone(b.idle[:n])
	b.idle = slices.Delete(b.idle, 0, n)
	if len(b.idle) > 0 {
		b.sweep.Reset(idleTTL - now.Sub(b.idle[0].idleSince))
	} else {
		b.sweep = nil
	}
	b.mu.Unlock()
	for _, u := range expired {
		u.conn.Close()
	}
}

// closeIdle closes the idle connections and keeps no more: the backend is gone.
func (b *Backend) closeIdle() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.dropIdle()
}

// dropIdle closes the idle connections: one of them turned out closed by the worker, so the
// others, idle as long or longer, likely are too.
func (b *Backend) dropIdle() {
	b.mu.Lock()
	idle := b.idle
	b.idle = nil
	b.mu.Unlock()
	for _, u := range idle {
		u.conn.Close()
	}
}

// quiet reports whether an idle connection is still open with nothing to read: a worker that
// closed it while idle, or sent bytes nobody asked for, would otherwise have the next request
// sent into a closed connection, or answered with those bytes.
func (u *upstream) quiet() bool {
	u.open = false
	return u.raw.Read(u.peekFn) == nil && u.open
}

// peek is quiet's look at the socket: open when a read would have to wait.
func (u *upstream) peek(fd uintptr) bool {
	var b [1]byte
	_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	u.open = err == unix.EAGAIN
	return true
}
