package balancer

import (
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/capabilities"
)

// When tender itself runs short of file descriptors (RLIMIT_NOFILE), of socket memory or of
// local ports, a connect to a worker fails through no fault of the worker. The worker is not
// avoided for the session then, as a worker that refused the connect is: the session tries
// again after a pause, as it would wait in the queue for a free worker, and for as long
// (TENDER_QUEUE_TIMEOUT). Meanwhile the idle connections to the workers, a cache, are closed
// to give their descriptors back.
const (
	shortPause    = 10 * time.Millisecond
	shortPauseMax = 100 * time.Millisecond
	// acceptPauseMax bounds the pause after a failed accept, doubling from shortPause as
	// net/http's server does.
	acceptPauseMax = time.Second
	// warnEvery is how often a warning that repeats (an accept or connect failing for want
	// of descriptors, many times a second under load) is logged.
	warnEvery = 10 * time.Second
)

// isShort reports whether err is tender's own shortage rather than the worker's failure.
func isShort(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EADDRNOTAVAIL} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// shortage follows one session through tender's shortage of descriptors: Wait pauses before
// the next try, longer each time, and says false once the session has waited its time.
type shortage struct {
	b     *Balancer
	since time.Time
	pause time.Duration
}

func (s *shortage) Wait(err error) bool {
	now := time.Now()
	if s.since.IsZero() {
		s.since, s.pause = now, shortPause
	}
	s.b.router.DropIdle()
	s.b.warnShort.Warn(s.b.log, "cannot connect to a worker: tender is short of resources; "+
		"raise its RLIMIT_NOFILE (docker run --ulimit nofile=N)", "error", err)
	if now.Sub(s.since) >= s.b.cfg.QueueTimeout {
		return false
	}
	time.Sleep(s.pause)
	s.pause = min(2*s.pause, shortPauseMax)
	return true
}

// errnoText is the system's words for err ("too many open files"), without the call that failed.
func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// rareWarn logs a warning that may repeat many times a second at most once every warnEvery,
// with the number of times it was left out.
type rareWarn struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

func (w *rareWarn) Warn(log hclog.Logger, msg string, args ...any) {
	w.mu.Lock()
	now := time.Now()
	if !w.last.IsZero() && now.Sub(w.last) < warnEvery {
		w.skipped++
		w.mu.Unlock()
		return
	}
	skipped := w.skipped
	w.last, w.skipped = now, 0
	w.mu.Unlock()
	if skipped > 0 {
		args = append(args, "repeated", skipped)
	}
	log.Warn(msg, args...)
}

// clientSlots bounds the client connections tender holds at once when its descriptors are
// few, as HAProxy derives its maxconn from RLIMIT_NOFILE: every session needs a second
// descriptor for its worker, and no more, a tunnel included (its bytes go through an event
// loop, or a copy with buffers of its own, never through pipes); tender keeps some descriptors
// for itself and its workers' pipes. Beyond
// the bound, clients wait in the kernel's accept queue, not in tender with a descriptor that
// cannot go anywhere. nil: no bound.
type clientSlots chan struct{}

const (
	// fdReserve is what tender keeps for other things than sessions: its workers' pipes and
	// notify sockets, probes, the control socket, the event loops' epoll and eventfd, and the
	// two dups an event loop makes of a session's descriptors before it closes the originals.
	fdReserve = 32
	// slotsUnbounded: with this many descriptors or more, no bound is needed.
	slotsUnbounded = 1 << 16
	minSlots       = 4
)

func newClientSlots() clientSlots {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur >= slotsUnbounded {
		return nil
	}
	fds, _ := capabilities.OpenFds()
	open := len(fds)
	return make(clientSlots, max((int(lim.Cur)-open-fdReserve)/2, minSlots))
}

// take waits for a free slot; false when stopped is closed first.
func (s clientSlots) take(stopped <-chan struct{}) bool {
	if s == nil {
		return true
	}
	select {
	case s <- struct{}{}:
		return true
	case <-stopped:
		return false
	}
}

// give frees a slot that take took.
func (s clientSlots) give() {
	if s != nil {
		<-s
	}
}
