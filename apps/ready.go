package apps

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// notifySocket is a worker's NOTIFY_SOCKET: an abstract unix datagram socket on which the
// worker may say, as to systemd's sd_notify, READY=1, WATCHDOG=1 (it is alive: see
// TENDER_WATCHDOG), WATCHDOG=trigger (it is not) and STOPPING=1 (recycle me). Abstract, so that
// it needs no writable directory; abstract names are shared by the whole network namespace (two
// containers of a pod, say), so the name has a random part.
type notifySocket struct {
	conn  *net.UnixConn
	name  string        // as NOTIFY_SOCKET gives it: @tender-...
	ready chan struct{} // closed at the first READY=1
	// said gets STOPPING=1 and WATCHDOG=trigger; one waiting is enough, a repeat is dropped.
	said chan string
	// pinged is when the worker last said WATCHDOG=1, in Unix nanoseconds; 0 before.
	pinged atomic.Int64
}

func newNotifySocket() (*notifySocket, error) {
	// math/rand/v2 is seeded by the runtime: unique enough for a name, and without crypto/rand,
	// whose packages every process tender starts would initialise.
	name := "@tender-notify-" + strconv.FormatUint(rand.Uint64(), 36)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	n := &notifySocket{conn: c, name: name, ready: make(chan struct{}), said: make(chan string, 1)}
	go n.read()
	return n, nil
}

// read takes what the worker says, until n is closed, once the worker is gone.
func (n *notifySocket) read() {
	buf := make([]byte, 4096)
	readied := false
	for {
		got, _, err := n.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		for _, line := range bytes.Split(buf[:got], []byte("\n")) {
			switch msg := string(bytes.TrimSpace(line)); msg {
			case "READY=1":
				if !readied {
					close(n.ready)
					readied = true
				}
			case "WATCHDOG=1":
				n.pinged.Store(time.Now().UnixNano())
			case "WATCHDOG=trigger", "STOPPING=1":
				select {
				case n.said <- msg:
				default:
				}
			}
		}
	}
}

func (n *notifySocket) Close() { n.conn.Close() }

// readyVia says how a worker became ready.
const (
	readyPort   = "port"
	readyNotify = "notify"
	// readyUptime: a worker of a type that serves no port stayed up long enough to count as
	// running.
	readyUptime = "uptime"
)

// readySent returns a channel that is closed when the worker sends READY=1 on n.
func (n *notifySocket) readySent() <-chan struct{} { return n.ready }

// waitReady waits until the worker accepts a connection on port (a listener that ours says is
// the worker's) or sends READY=1 (sent is closed), and returns how; it returns "" when stop is
// closed first.
func waitReady(stop <-chan struct{}, port int, sent <-chan struct{}, ours func() bool) string {
	accepts := make(chan struct{})
	go func() {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		// From every millisecond, 10% less often with each try, up to every 100ms: a connect
		// to a closed loopback port is refused in microseconds, and a quick app is seen ready
		// within a millisecond, where doubling from 2ms left it waiting up to 4 more.
		for delay := time.Millisecond; ; delay = min(delay*11/10, 100*time.Millisecond) {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				if ours() {
					close(accepts)
					return
				}
			}
			select {
			case <-stop:
				return
			case <-sent:
				return
			case <-time.After(delay):
			}
		}
	}()
	select {
	case <-accepts:
		return readyPort
	case <-sent:
		return readyNotify
	case <-stop:
		return ""
	}
}

// waitRunning waits until a worker of a type that serves no port sends READY=1 (sent is
// closed) or, unless it must send it, has stayed up for settle; it returns how, "" when stop
// is closed first. Such a worker is never waited for on a port it was not meant to serve.
func waitRunning(stop, sent <-chan struct{}, settle time.Duration, mustNotify bool) string {
	var settled <-chan time.Time
	if !mustNotify {
		t := time.NewTimer(settle)
		defer t.Stop()
		settled = t.C
	}
	select {
	case <-sent:
		return readyNotify
	case <-settled:
		return readyUptime
	case <-stop:
		return ""
	}
}

// probeHealth checks once that a ready worker still serves on port: in HTTP, OPTIONS * must
// get an answer; otherwise the connection must be taken off the listen queue. A stopped or hung
// process still completes TCP handshakes in the kernel, so a connect alone proves nothing.
func probeHealth(port int, http bool, timeout time.Duration) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if http {
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := c.Write([]byte("OPTIONS * HTTP/1.1\r\nHost: tender\r\nConnection: close\r\n\r\n")); err != nil {
			return err
		}
		var b [512]byte
		if _, err := c.Read(b[:]); err != nil {
			return fmt.Errorf("no answer to OPTIONS *: %w", err)
		}
		// The rest of the answer, up to the worker's close (Connection: close), so that closing
		// first does not reset the connection under the worker, which would log an error for
		// every probe. A worker slow to close costs the probe at most the rest of its timeout.
		for {
			if _, err := c.Read(b[:]); err != nil {
				return nil
			}
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		queued, err := acceptQueue(port)
		if err != nil || queued == 0 {
			return nil // taken, or the queue cannot be read: the connect has to do
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d connections wait to be accepted", queued)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// acceptQueue is the number of connections waiting to be accepted on the listeners of port.
func acceptQueue(port int) (int, error) {
	rows, err := tcpListeners(port)
	if err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		return 0, errors.New("no listener")
	}
	total := 0
	for _, r := range rows {
		total += r.queued
	}
	return total, nil
}
