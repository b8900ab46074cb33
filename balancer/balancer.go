package balancer

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config is what the balancer is told to do.
type Config struct {
	Network, Addr string // tcp or unix, and the address
	HTTP          bool   // a session is one HTTP request; otherwise one connection
	Concurrency   int    // sessions per worker, 0 = unlimited
	QueueSize     int
	QueueTimeout  time.Duration
	HeaderTimeout time.Duration // for a request's head
	ClientTimeout time.Duration // a silent client, idle between requests or while sending a body
	BodyMinRate   int64         // bytes a second a request body must keep to on average; 0 = none
	Underscores   bool          // pass on request headers with '_' in their names (some: see underscored)
	WorkerTimeout time.Duration // a silent worker, or one that leaves the request unread (http); 0 = none
	AccessLog     hclog.Logger  // a line per request (http) or connection (tcp); nil = none
}

// Balancer accepts on the front socket and routes each session to the least busy worker.
type Balancer struct {
	cfg    Config
	router *Router
	ln     net.Listener
	log    hclog.Logger

	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*httpConn]struct{} // HTTP clients, to wake the idle ones at Close

	warnAccept, warnShort, warnSilent rareWarn
	timings                           timings
	// slots bounds the client connections held at once when descriptors are few; nil for no
	// bound. stopped is closed by Close, to end a wait for a slot.
	slots   clientSlots
	stopped chan struct{}
}

// Listen opens the front socket. A unix socket left by a tender that is gone is replaced.
func Listen(cfg Config, log hclog.Logger) (*Balancer, error) {
	if cfg.Network == "unix" {
		if _, err := os.Lstat(cfg.Addr); err == nil {
			if c, err := net.DialTimeout("unix", cfg.Addr, 200*time.Millisecond); err == nil {
				c.Close()
				return nil, fmt.Errorf("TENDER_LISTEN=unix:%s: another process answers there", cfg.Addr)
			}
			_ = os.Remove(cfg.Addr)
		}
	}
	ln, err := net.Listen(cfg.Network, cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("TENDER_LISTEN=%s: %w", cfg.Addr, err)
	}
	return &Balancer{
		cfg:     cfg,
		router:  NewRouter(cfg.Concurrency, cfg.QueueSize, cfg.QueueTimeout),
		ln:      ln,
		log:     log,
		conns:   map[*httpConn]struct{}{},
		slots:   newClientSlots(),
		stopped: make(chan struct{}),
	}, nil
}

// Addr is the front socket's address.
func (b *Balancer) Addr() net.Addr { return b.ln.Addr() }

// Serve accepts sessions until Close.
// A failed accept (out of descriptors, say) is tried again after a pause that doubles up to
// a second: the clients wait in the kernel's backlog meanwhile, and tender does not spin.
func (b *Balancer) Serve() {
	var pause time.Duration
	for {
		if !b.slots.take(b.stopped) {
			return
		}
		c, err := b.ln.Accept()
		if err != nil {
			b.slots.give()
			if b.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			if isShort(err) {
				b.router.DropIdle()
			}
			pause = min(max(2*pause, shortPause), acceptPauseMax)
			b.warnAccept.Warn(b.log, "accept failed; trying again", "error", err, "pause", pause)
			time.Sleep(pause)
			continue
		}
		pause = 0
		if b.cfg.HTTP {
			go func() {
				defer b.slots.give()
				b.serveHTTP(c)
			}()
		} else {
			go b.serveTCP(c, b.slots.give)
		}
	}
}

// Add, Remove and QueueLen let the pool tell the balancer about its workers.
func (b *Balancer) Add(be *Backend)    { b.router.Add(be) }
func (b *Balancer) Remove(be *Backend) { b.router.Remove(be) }
func (b *Balancer) QueueLen() int      { return b.router.QueueLen() }

// Close stops accepting: queued sessions are refused, idle keep-alive clients are let go, and
// the sessions in flight finish.
func (b *Balancer) Close() {
	if b.closing.Swap(true) {
		return
	}
	b.ln.Close()
	close(b.stopped)
	b.router.Close()
	b.mu.Lock()
	for hc := range b.conns {
		if hc.idle.Load() {
			_ = hc.c.SetReadDeadline(time.Now())
		}
	}
	b.mu.Unlock()
}

// serveTCP is one TCP session: the connection goes to the least busy worker, retried on
// another one when the connect fails, and an event loop copies the bytes both ways until both
// sides are done. free gives the session's client slot back, once both sides are closed: here
// when the session never got a worker, through release otherwise.
func (b *Balancer) serveTCP(client net.Conn, free func()) {
	start := time.Now()
	served := false // release frees the slot
	defer func() {
		client.Close()
		if !served {
			free()
		}
	}()
	var tried []*Backend
	short := shortage{b: b}
	for {
		asked := time.Now()
		be, err := b.router.Acquire(tried)
		b.timings.queueWait.observe(time.Since(asked))
		if err != nil {
			b.log.Debug("refusing a connection", "why", err)
			b.logConnection(client, nil, 0, 0, time.Since(start), err)
			return
		}
		routedAt := b.router.Now()
		up, err := be.dial()
		if err != nil {
			b.router.Release(be, false, false)
			if isShort(err) {
				if !short.Wait(err) {
					b.log.Debug("refusing a connection", "why", err)
					b.logConnection(client, nil, 0, 0, time.Since(start), err)
					return
				}
				continue
			}
			tried = append(tried, be)
			b.log.Debug("connect to worker failed; trying another", "worker", be.ID, "error", err)
			continue
		}
		served = true
		answers := &answerWatch{router: b.router, be: be, routedAt: routedAt}
		release := func(toWorker, toClient int64) {
			b.router.Release(be, true, answers.answered)
			d := time.Since(start)
			b.timings.sessions.observe(d)
			b.logConnection(client, be, toWorker, toClient, d, nil)
			free()
		}
		if err := serveLoop(client, up, b.cfg.ClientTimeout, release, answers); err != nil {
			b.log.Debug("no event loop; copying with goroutines", "error", err)
			toWorker, toClient := pipe(client, up, b.cfg.ClientTimeout)
			up.Close()
			release(toWorker, toClient)
		}
		return
	}
}

// copyBuf is the buffer of each direction of a copy with goroutines.
const copyBuf = 32 << 10

// halfCloser is a connection that can close its writing half (TCP and unix sockets).
type halfCloser interface {
	CloseWrite() error
}

// pipe copies client to worker and worker to client until both directions are done (an
// upgraded HTTP connection, or a tcp session when no event loop can be had). A side
// that has finished sending is half-closed on the other connection. A client that half-closes
// still gets the whole answer; once the worker has finished, the client has linger to finish
// too, so that a client that never closes does not hold the session forever. It returns the
// bytes copied each way.
func pipe(client, worker net.Conn, linger time.Duration) (toWorker, toClient int64) {
	done := make(chan struct{})
	go func() {
		toWorker = copyHalf(worker, client)
		close(done)
	}()
	toClient = copyHalf(client, worker)
	_ = client.SetReadDeadline(time.Now().Add(linger))
	<-done
	return toWorker, toClient
}

// copyHalf copies src to dst and half-closes dst. It reads and writes through a buffer of its
// own: io.Copy between two TCP connections splices through pipes from a pool of the Go
// runtime's, two more descriptors each way, which stay open long after the copy (until a
// garbage collection), and which tender's count of descriptors does not foresee.
func copyHalf(dst, src net.Conn) int64 {
	buf := make([]byte, copyBuf)
	n, _ := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
	if hc, ok := dst.(halfCloser); ok {
		_ = hc.CloseWrite()
	} else {
		dst.Close()
	}
	return n
}
