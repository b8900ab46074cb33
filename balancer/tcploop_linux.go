package balancer

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A tcp session costs two goroutines and a netpoller wake-up for every message each way when
// copied with io.Copy; on a busy small machine that is 40% more CPU per request than HAProxy.
// So tcp sessions, once routed and connected, are handed to an event loop: one per CPU, each
// on a thread of its own, copying edge-triggered through one shared buffer, as HAProxy does.

// loopBuf is the buffer a loop reads into; a write that would block keeps only its remainder.
const loopBuf = 64 << 10

var (
	loopsOnce sync.Once
	loops     []*loop
	loopNext  atomic.Uint32
	loopErr   error
)

// pickLoop returns one of the process's event loops, started on first use.
func pickLoop() (*loop, error) {
	loopsOnce.Do(func() {
		for i := 0; i < max(runtime.GOMAXPROCS(0), 1); i++ {
			l, err := newLoop()
			if err != nil {
				loopErr = err
				return
			}
			loops = append(loops, l)
			go l.run()
		}
	})
	if loopErr != nil {
		return nil, loopErr
	}
	return loops[loopNext.Add(1)%uint32(len(loops))], nil
}

// loop is one epoll event loop and the sessions it owns. Only its goroutine touches them;
// others send it work through post.
type loop struct {
	epfd int
	wake int // an eventfd that says inbox has work
	buf  []byte

	mu    sync.Mutex
	inbox []func()

	ends map[int32]*end // by fd
}

// tcpSession is a client connection and a worker connection copied both ways.
type tcpSession struct {
	ends [2]end // 0: the client, 1: the worker
	// release ends the session in the router, with the bytes copied each way.
	release func(toWorker, toClient int64)
	answers *answerWatch // nil for a tunnel
	linger  time.Duration
	// lingering closes the session linger after the worker finished; stopped when it closes
	// first, or it would keep the session, and its memory, that long.
	lingering *time.Timer
	closed    bool
}

// end is one connection of a session, and the direction that reads from it.
type end struct {
	s       *tcpSession
	fd      int
	peer    *end
	eof     bool   // read gave end-of-file, and the peer's writing half was shut
	pending []byte // what could not be written to the peer yet; reading waits for it
	copied  int64  // bytes read from this end and written to the peer
}

func newLoop() (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, err
	}
	return &loop{epfd: epfd, wake: wake, buf: make([]byte, loopBuf), ends: map[int32]*end{}}, nil
}

// post runs fn in the loop's goroutine.
func (l *loop) post(fn func()) {
	l.mu.Lock()
	l.inbox = append(l.inbox, fn)
	l.mu.Unlock()
	_, _ = unix.Write(l.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
}

// serveLoop hands a connected client and worker to an event loop, which calls release once
// both directions are over, with the bytes it copied each way, and tells answers (unless nil)
// when the worker sends bytes. The loop takes copies of their fds, and client and worker are
// closed here; on an error (no descriptor left for a copy, say) they are left open, for the
// caller to copy the bytes another way.
func serveLoop(client, worker net.Conn, linger time.Duration, release func(toWorker, toClient int64), answers *answerWatch) error {
	l, err := pickLoop()
	if err != nil {
		return err
	}
	cfd, err := takeFd(client)
	if err != nil {
		return err
	}
	wfd, err := takeFd(worker)
	if err != nil {
		unix.Close(cfd)
		return err
	}
	client.Close()
	worker.Close()
	s := &tcpSession{release: release, answers: answers, linger: linger}
	s.ends[0] = end{s: s, fd: cfd}
	s.ends[1] = end{s: s, fd: wfd}
	s.ends[0].peer, s.ends[1].peer = &s.ends[1], &s.ends[0]
	l.post(func() { l.add(s) })
	return nil
}

// answerWatch tells the router that a tcp session's worker answers: its first bytes are the
// answer, timed from routedAt (monotime), and later ones show the worker is alive. Only the
// loop touches it, and the session's release reads it after.
type answerWatch struct {
	router   *Router
	be       *Backend
	routedAt int64
	answered bool
}

func (a *answerWatch) heard() {
	if !a.answered {
		a.answered = true
		a.router.Answered(a.be, a.routedAt)
		return
	}
	now := a.router.Now()
	a.be.lastAnswer.Store(now)
	a.router.heard.Store(now)
}

// takeFd duplicates a connection's fd, close-on-exec, for the loop to own outside the Go
// runtime's poller. The copy shares the original's open file, and so the O_NONBLOCK that the
// Go runtime set on every socket it made: two system calls fewer per descriptor.
func takeFd(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, errors.New("not a socket")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	return fd, nil
}

// add starts watching a new session's two ends.
func (l *loop) add(s *tcpSession) {
	for i := range s.ends {
		e := &s.ends[i]
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(e.fd)}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, e.fd, &ev); err != nil {
			l.close(s)
			return
		}
		l.ends[int32(e.fd)] = e
	}
	// Data may have come before the fds were watched; edge-triggered epoll reports only what
	// comes after.
	l.pump(&s.ends[0], true)
	l.pump(&s.ends[1], true)
}

// run waits for events and moves bytes, forever. It looks for events without blocking first,
// and blocks only when there are none: a blocking system call costs a context switch and wakes
// the Go runtime's monitor, and under load the next events are usually there already.
func (l *loop) run() {
	runtime.LockOSThread()
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := pollNow(l.epfd, events)
		if err == nil && n == 0 {
			n, err = unix.EpollWait(l.epfd, events, -1)
		}
		if err != nil {
			continue // EINTR
		}
		for i := 0; i < n; i++ {
			ev := events[i]
			if int(ev.Fd) == l.wake {
				l.drainInbox()
				continue
			}
			e := l.ends[ev.Fd]
			if e == nil || e.s.closed {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				l.flush(e.peer) // the peer's bytes waiting to be written to e
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && !e.s.closed {
				// Without a hang-up in this event a short read means the socket is empty;
				// with one, the end-of-file must be read too.
				l.pump(e, ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0)
			}
		}
	}
}

func (l *loop) drainInbox() {
	var b [8]byte
	_, _ = unix.Read(l.wake, b[:])
	l.mu.Lock()
	work := l.inbox
	l.inbox = nil
	l.mu.Unlock()
	for _, fn := range work {
		fn()
	}
}

// pump copies from e to its peer until e has nothing more to read, the peer takes no more
// (the rest waits in e.pending for the peer's EPOLLOUT), or e ends. Unless drain is set, a
// short read is taken to mean that e is empty for now: data or an end-of-file that comes later
// raises a new edge. drain reads until EAGAIN: when an end-of-file may already be waiting, or
// when reading resumes without an event.
func (l *loop) pump(e *end, drain bool) {
	for !e.eof && len(e.pending) == 0 && !e.s.closed {
		n, err := rawRead(e.fd, l.buf)
		switch {
		case n > 0:
			if e.s.answers != nil && e == &e.s.ends[1] {
				e.s.answers.heard()
			}
			w, werr := writeSome(e.peer.fd, l.buf[:n])
			e.copied += int64(w)
			if w < n {
				if werr != nil && !errors.Is(werr, unix.EAGAIN) {
					l.close(e.s)
					return
				}
				e.pending = append(e.pending[:0], l.buf[w:n]...)
				return
			}
			if n < len(l.buf) && !drain {
				// Reading again only to hear EAGAIN would be a third system call a message.
				return
			}
		case n == 0 && err == nil:
			l.readEOF(e)
			return
		case errors.Is(err, unix.EAGAIN):
			return
		case errors.Is(err, unix.EINTR):
		default:
			l.close(e.s) // reset: the session is over both ways
			return
		}
	}
}

// flush writes what e could not pass to its peer before, then goes on reading e.
func (l *loop) flush(e *end) {
	if len(e.pending) == 0 || e.s.closed {
		return
	}
	w, err := writeSome(e.peer.fd, e.pending)
	e.copied += int64(w)
	if w < len(e.pending) {
		if err != nil && !errors.Is(err, unix.EAGAIN) {
			l.close(e.s)
			return
		}
		e.pending = e.pending[w:]
		return
	}
	e.pending = nil
	l.pump(e, true)
}

func writeSome(fd int, b []byte) (int, error) {
	done := 0
	for done < len(b) {
		n, err := rawWrite(fd, b[done:])
		if n > 0 {
			done += n
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// readEOF handles an end that has finished sending: its peer's writing half is shut, and
// when both have finished the session is over. A client that has not finished once the worker
// has gets linger to do so.
func (l *loop) readEOF(e *end) {
	e.eof = true
	_ = unix.Shutdown(e.peer.fd, unix.SHUT_WR)
	s := e.s
	if s.ends[0].eof && s.ends[1].eof {
		l.close(s)
		return
	}
	if e == &s.ends[1] && s.lingering == nil {
		s.lingering = time.AfterFunc(s.linger, func() { l.post(func() { l.close(s) }) })
	}
}

// close ends a session: both fds closed (which also takes them out of epoll), released in the
// router. Closing twice is harmless.
func (l *loop) close(s *tcpSession) {
	if s.closed {
		return
	}
	s.closed = true
	if s.lingering != nil {
		s.lingering.Stop()
	}
	for i := range s.ends {
		e := &s.ends[i]
		if l.ends[int32(e.fd)] == e {
			delete(l.ends, int32(e.fd))
		}
		unix.Close(e.fd)
	}
	s.release(s.ends[0].copied, s.ends[1].copied)
}

// The loop's fds are non-blocking, so its reads, writes and polls with a zero timeout never
// block: raw system calls spare them the Go runtime's accounting of a call that may.

func rawRead(fd int, b []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawWrite(fd int, b []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func pollNow(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
