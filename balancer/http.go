package balancer

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// httpConn is one client connection in http mode: keep-alive requests one after the other,
// each a session of its own that may go to a different worker.
type httpConn struct {
	b    *Balancer
	c    net.Conn
	in   clientReader
	br   *bufio.Reader // reads through in
	bw   *bufio.Writer
	ip   string
	idle atomic.Bool // waiting for the next request: Close may let it go

	cw   clientWriter
	body bodyClock
	// idleRead moves the client's read deadline on while it is idle between requests; its
	// zero value says another read deadline was set since, and the idle one must be set again.
	idleRead  slidingDeadline
	req, resp head
	reqOut    []byte // the request as it goes to the worker, kept whole for a retry
	out       []byte // a response head going to the client

	// The request being served, as the metrics and the access log see it.
	start      time.Time     // its first byte came: before the queue, as X-Request-Start says
	asked      bool          // it asked the router for a worker
	waited     time.Duration // for a worker, in the queue or for a retry
	worker     *Backend      // the last worker it went to
	answered   bool          // that worker answered
	status     int           // of the response the client got; 0 before one
	sentBefore int64         // cw.written at its start
}

// Buffer sizes: a header line longer than readBuf is refused (431), as nginx does at 8 KiB.
const (
	readBuf  = 8 << 10
	writeBuf = 8 << 10
	// smallBody is how much of a request body may go out with its head in one write.
	smallBody = 16 << 10
	// bodySettle is how long a response waits for the copy of its request's body to end: a
	// worker that answered once it had read the whole body may be a moment ahead of the copy.
	bodySettle = 5 * time.Millisecond
)

func (b *Balancer) serveHTTP(c net.Conn) {
	hc := &httpConn{b: b, c: c, in: clientReader{c: c}}
	hc.br = bufio.NewReaderSize(&hc.in, readBuf)
	hc.body = bodyClock{rate: float64(b.cfg.BodyMinRate), window: b.cfg.ClientTimeout}
	hc.cw = clientWriter{c: c, timeout: b.cfg.ClientTimeout}
	hc.bw = bufio.NewWriterSize(&hc.cw, writeBuf)
	if tcp, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		hc.ip = tcp.IP.String()
	}
	b.mu.Lock()
	b.conns[hc] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.conns, hc)
		b.mu.Unlock()
		c.Close()
	}()
	for hc.serveOne() {
	}
}

// serveOne reads and answers one request, and reports whether the connection goes on.
func (hc *httpConn) serveOne() bool {
	hc.idle.Store(true)
	if hc.b.closing.Load() {
		return false
	}
	if t, due := hc.idleRead.next(hc.b.cfg.ClientTimeout); due {
		_ = hc.c.SetReadDeadline(t)
	}
	if _, err := hc.br.Peek(1); err != nil {
		return false // closed, idle too long, or let go by Close
	}
	hc.idle.Store(false)
	hc.start = time.Now()
	hc.asked, hc.waited, hc.worker, hc.status = false, 0, nil, 0
	hc.sentBefore = hc.cw.written
	goOn := hc.readAndForward()
	d := time.Since(hc.start)
	if hc.status != 0 {
		hc.b.timings.sessions.observe(d)
	}
	if hc.asked {
		hc.b.timings.queueWait.observe(hc.waited)
	}
	hc.logRequest(d)
	return goOn
}

// readAndForward reads the request whose first byte has come and passes it on, or answers it
// when it is not one to pass on. It reports whether the connection goes on.
func (hc *httpConn) readAndForward() bool {
	// From its first byte, the head has HEADER_TIMEOUT to arrive: a slowloris client never
	// gets as far as a worker. A head that came whole, as most do, is read without waiting,
	// and without the cost of two more deadlines: the idle one stays, and no read of the
	// client's comes until the next request but the body's, which sets its own.
	if !headIn(hc.br) {
		_ = hc.c.SetReadDeadline(hc.start.Add(hc.b.cfg.HeaderTimeout))
		hc.idleRead = slidingDeadline{}
	}
	if err := hc.req.readHead(hc.br); err != nil {
		var he *httpError
		switch {
		case errors.As(err, &he):
			hc.fail(he)
		case isTimeout(err):
			hc.fail(&httpError{408, "Request Timeout"})
		}
		return false
	}
	if err := hc.req.parseRequest(); err != nil {
		var he *httpError
		if errors.As(err, &he) {
			hc.fail(he)
		}
		return false
	}
	return hc.forward()
}

// headIn reports whether br holds a whole request head: after the empty lines a client may
// send before it, the empty line that ends it.
func headIn(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	for len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	return bytes.Contains(b, []byte("\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

// outcome is how an exchange with a worker ended.
type outcome int

const (
	served     outcome = iota // the response went to the client
	retry                     // the worker never had the request; it may go again
	unanswered                // the worker had it whole and closed without a byte of answer
	failed                    // failed: the client connection cannot go on
)

// maxUnanswered is how many workers may close on an idempotent request, or die with it, before
// it is given up (HAProxy's default retries, 3). A worker killed while it served a request is
// rare enough that a second or a third is no longer chance: the request is what kills them (a
// query of death), and sending it on would take down each replacement in turn.
const maxUnanswered = 3

// forward sends the request to the least busy worker and its response back. It reports
// whether the client connection goes on.
func (hc *httpConn) forward() bool {
	req := &hc.req
	hc.reqOut = req.appendRequest(hc.reqOut[:0], hc.ip, hc.b.cfg.Underscores, hc.start)
	// A small body that is already here goes out with the head in one write, and the request
	// stays whole in reqOut for a retry. A larger one is streamed, and never retried.
	stream := req.chunked || req.contentLength > 0
	if n := req.contentLength; n > 0 && n <= smallBody && int64(hc.br.Buffered()) >= n {
		b, _ := hc.br.Peek(int(n))
		hc.reqOut = append(hc.reqOut, b...)
		_, _ = hc.br.Discard(int(n))
		stream = false
	}
	idempotent := isIdempotent(req.method)
	target := targetKey(req.method, req.path)

	var tried []*Backend
	var retryBy time.Time // set at the first failed try
	lost := 0             // tries a worker had whole on a new connection and closed unanswered
	short := shortage{b: hc.b}
	for {
		if !retryBy.IsZero() && time.Now().After(retryBy) {
			hc.fail(&httpError{502, "Bad Gateway: no worker answered within " + hc.b.cfg.QueueTimeout.String()})
			return false
		}
		asked := time.Now()
		be, err := hc.acquire(tried, retryBy)
		hc.asked, hc.waited = true, hc.waited+time.Since(asked)
		if err != nil {
			hc.fail(&httpError{503, "Service Unavailable: " + err.Error()})
			return false
		}
		hc.worker, hc.answered = be, false
		routedAt := hc.b.router.Now()
		slow := hc.b.router.Given(be, target, routedAt)
		up, err := be.connect(idempotent && !stream)
		res := retry
		if err == nil {
			var closeClient bool
			res, closeClient = hc.exchange(be, up, routedAt, target, stream, idempotent)
			if res != retry && res != unanswered {
				if slow && !hc.answered {
					hc.b.router.Unanswered(be, routedAt)
				}
				hc.b.router.Release(be, true, hc.answered)
				return res == served && !closeClient && !hc.b.closing.Load()
			}
		}
		if slow && !hc.answered {
			hc.b.router.Unanswered(be, routedAt)
		}
		hc.b.router.Release(be, false, hc.answered)
		// A kept-alive connection may have been closed by its worker while idle, as HTTP lets
		// it (its keep-alive timeout, a limit of requests a connection): no strike, and the
		// worker's idle connections are dropped below, so a worker takes one such try at most.
		if err == nil && res == unanswered && !up.reused {
			if lost++; lost == maxUnanswered {
				hc.fail(&httpError{502, "Bad Gateway: " + strconv.Itoa(lost) + " workers closed the connection or died without an answer to this request: it is not sent again"})
				return false
			}
		}
		if err != nil && isShort(err) { // tender's shortage, no failed attempt of the worker's
			if !short.Wait(err) {
				hc.fail(&httpError{503, "Service Unavailable: tender cannot connect to a worker: " + errnoText(err)})
				return false
			}
			continue
		}
		if retryBy.IsZero() {
			retryBy = time.Now().Add(hc.b.cfg.QueueTimeout)
		}
		if err == nil && up.reused {
			// A kept-alive connection that broke was most likely closed by the worker just
			// now (its keep-alive timeout, or its death): try again, the same worker maybe,
			// on a new connection.
			be.dropIdle()
			continue
		}
		// The worker refused the connect, or closed a new connection: it died, or it is
		// stopping. The next try goes to another worker, its replacement maybe, which the
		// request waits for in the queue when there is none.
		tried = append(tried, be)
		if err == nil && !hc.b.router.AnyBut(tried) && be.Routable() && be.answers() {
			// Yet its port still accepts: it is alive, and hung up on this request. With no
			// other worker to ask, there is nothing to wait for.
			hc.fail(&httpError{502, "Bad Gateway: the worker closed the connection without an answer, and no other worker is there to ask"})
			return false
		}
	}
}

// acquire is the worker for the next try of the request: after a failed try, the request
// waits in the queue for one until retryBy, TENDER_QUEUE_TIMEOUT after its first failed try.
func (hc *httpConn) acquire(tried []*Backend, retryBy time.Time) (*Backend, error) {
	if retryBy.IsZero() {
		return hc.b.router.Acquire(tried)
	}
	return hc.b.router.AcquireBy(tried, retryBy)
}

// isIdempotent says whether a request may be sent twice (RFC 9110 9.2.2).
func isIdempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// exchange sends the request (reqOut, then the body when stream) on up and passes the
// response back. It returns the outcome and whether the client connection must close. The
// first response head, an interim one maybe, tells the router that be answers.
//
// A request goes again (retry) only when the worker cannot have acted on it: the write failed
// (the worker had closed the connection), or it is idempotent, was whole in tender's hands and
// got no answer at all. A POST the worker may have read is never sent twice, and an answer that
// is malformed is a 502, not a reason to ask again.
func (hc *httpConn) exchange(be *Backend, up *upstream, routedAt int64, target uint32, stream, idempotent bool) (outcome, bool) {
	req := &hc.req
	up.io.timeout = hc.b.cfg.WorkerTimeout
	if _, err := up.io.Write(hc.reqOut); err != nil {
		up.conn.Close()
		if errors.Is(err, errWorkerStalled) {
			hc.failSilent(be, err)
			return failed, true
		}
		return retry, false // nothing of a streamed body was read yet
	}
	// A body still to come is copied by its own goroutine while the response is read: the
	// worker may answer early (413, or 100 Continue, which the client waits for). The copy's
	// error is sent before the worker connection is closed, so that the reader, woken by the
	// close, finds it. The worker's time to answer runs from the end of the request.
	var bodyDone chan error
	if stream {
		bodyDone = make(chan error, 1)
		go func() {
			err := hc.copyRequestBody(up)
			if err == nil {
				up.io.arm()
			}
			bodyDone <- err
			if err != nil {
				up.conn.Close()
			}
		}()
	} else {
		up.io.arm()
	}

	for answered := false; ; answered = true {
		err := hc.resp.readHead(up.br)
		if err == nil && !answered {
			hc.b.router.AnsweredTarget(be, target, routedAt)
			hc.answered = true
		}
		if err == nil {
			err = hc.resp.parseResponse()
		}
		if err != nil {
			up.conn.Close()
			bodyErr := hc.waitBody(bodyDone)
			if isTimeout(err) || errors.Is(bodyErr, errWorkerStalled) {
				// Only TENDER_WORKER_TIMEOUT puts a deadline on a worker connection. The
				// worker may have acted on the request: it is not sent again.
				hc.failSilent(be, err)
				return failed, true
			}
			var malformed *httpError
			if !answered && !stream && idempotent && !errors.As(err, &malformed) {
				return unanswered, false
			}
			switch {
			case answered:
			case errors.Is(bodyErr, errBodyTooSlow):
				hc.fail(&httpError{408, "Request Timeout: the request's body came slower than " +
					strconv.FormatInt(hc.b.cfg.BodyMinRate, 10) + " bytes a second for too long"})
			case isTimeout(bodyErr):
				hc.fail(&httpError{408, "Request Timeout: the request's body stopped coming"})
			case errors.Is(bodyErr, errBadChunk):
				hc.fail(&httpError{400, "Bad Request: " + errBadChunk.Error()})
			case errors.As(err, &malformed):
				hc.fail(&httpError{502, "Bad Gateway: no valid response from the worker"})
			default:
				hc.fail(&httpError{502, "Bad Gateway: the worker closed the connection without an answer, and may have acted on the request: it is not sent again"})
			}
			return failed, true
		}
		if hc.resp.status < 100 || hc.resp.status >= 200 || hc.resp.status == 101 {
			break
		}
		// 100 Continue, 103 Early Hints: passed on; the real response follows.
		hc.out = hc.resp.appendResponse(hc.out[:0], false, false)
		if _, err := hc.bw.Write(hc.out); err != nil || hc.bw.Flush() != nil {
			up.conn.Close()
			hc.waitBody(bodyDone)
			return failed, true
		}
	}

	// The client connection can go on only when the request body was read whole.
	bodyPending := false
	bodyFailed := false
	if bodyDone != nil {
		settle := time.NewTimer(bodySettle)
		select {
		case err := <-bodyDone:
			bodyDone, bodyFailed = nil, err != nil
		case <-settle.C:
			bodyPending = true
		}
		settle.Stop()
	}

	if hc.resp.status == 101 {
		if !req.isUpgrade() || bodyPending || bodyFailed {
			// The worker's side of the connection speaks something else now; or the request's
			// body is not through, and its copy would read the client beside the tunnel.
			up.conn.Close()
			hc.waitBody(bodyDone)
			hc.fail(&httpError{502, "Bad Gateway: the worker switched protocols unasked, or before the request's body was through"})
			return failed, true
		}
		hc.out = hc.resp.appendResponse(hc.out[:0], false, false)
		up.io.disarm()
		hc.status = 101
		if _, err := hc.bw.Write(hc.out); err == nil && hc.bw.Flush() == nil {
			hc.tunnel(up)
		}
		up.conn.Close()
		return served, true
	}

	hasBody := responseHasBody(req.method, hc.resp.status)
	untilClose := hasBody && !hc.resp.chunked && hc.resp.contentLength < 0
	closeClient := req.wantsClose() || untilClose || bodyPending || bodyFailed || hc.b.closing.Load()

	hc.out = hc.resp.appendResponse(hc.out[:0], closeClient, req.minor == 0 && !closeClient)
	hc.status = hc.resp.status
	_, werr := hc.bw.Write(hc.out)
	var rerr error
	if werr == nil && hasBody {
		flush := func() error {
			if err := hc.bw.Flush(); err != nil {
				werr = err
				return err
			}
			return nil
		}
		switch {
		case hc.resp.chunked:
			rerr = copyChunked(hc.bw, up.br, nil, flush)
		case hc.resp.contentLength >= 0:
			_, rerr = copyN(hc.bw, up.br, hc.resp.contentLength, nil, flush)
		default:
			rerr = copyUntilEOF(hc.bw, up.br, flush)
		}
	}
	if werr == nil {
		werr = hc.bw.Flush()
	}
	if werr == nil && isTimeout(rerr) {
		hc.b.warnSilent.Warn(hc.b.log, "a worker went silent in the middle of its answer: cut off", "worker", be.ID, "timeout", hc.b.cfg.WorkerTimeout)
		if tc, ok := hc.c.(*net.TCPConn); ok && untilClose {
			// A response that ends where the connection does would look whole with a plain
			// close: a reset says it is not.
			_ = tc.SetLinger(0)
		}
	}
	if bodyPending {
		// The worker answered without reading the whole body: neither connection can go on.
		up.conn.Close()
		hc.waitBody(bodyDone)
		return served, true
	}
	// A response without a body (204, 304, an answer to HEAD) leaves its connection unused
	// again: a worker that sends a body after it anyway, or a second response, sends it a moment
	// later, and the next request on the connection, another client's maybe, would be answered
	// with it. Nothing tells such bytes from the next answer but not asking on that connection.
	if werr == nil && rerr == nil && hasBody && !untilClose && !bodyFailed && !hc.resp.connClose && !hc.resp.faultyFraming &&
		(hc.resp.minor == 1 || hc.resp.connKeepAlive) {
		be.release(up)
	} else {
		up.conn.Close()
	}
	// A response the worker broke off cannot be told from a whole one but by closing.
	return served, closeClient || werr != nil || rerr != nil
}

// failSilent answers 504 for a worker that did not answer, or did not read the request, within
// TENDER_WORKER_TIMEOUT.
func (hc *httpConn) failSilent(be *Backend, err error) {
	what := "did not answer"
	if errors.Is(err, errWorkerStalled) {
		what = "stopped reading the request"
	}
	hc.b.warnSilent.Warn(hc.b.log, "a worker "+what+" in time: 504", "worker", be.ID, "timeout", hc.b.cfg.WorkerTimeout)
	hc.fail(&httpError{504, "Gateway Timeout: the worker " + what + " within " + hc.b.cfg.WorkerTimeout.String()})
}

// waitBody waits for a body copy to end after the worker connection was closed. It returns the
// copy's error when the copy ended by itself (a client that stopped sending), nil when tender
// stopped it.
func (hc *httpConn) waitBody(done chan error) error {
	if done == nil {
		return nil
	}
	select {
	case err := <-done:
		return err
	default:
	}
	_ = hc.c.SetReadDeadline(time.Now())
	<-done
	return nil
}

// copyRequestBody streams the request body to the worker. A client that stays silent for
// CLIENT_TIMEOUT, falls that far behind BODY_MIN_RATE (errBodyTooSlow), or goes away, ends it;
// the worker connection is then closed (by the caller) so that the response read ends too.
// The time tender waits to write to the worker is not the client's.
func (hc *httpConn) copyRequestBody(up *upstream) error {
	hc.body.start()
	hc.in.clock = &hc.body
	defer func() { hc.in.clock, hc.idleRead = nil, slidingDeadline{} }()
	byRate := false // the deadline set is the rate's, shorter than the client timeout
	before := func() error {
		left := hc.body.left()
		if left <= 0 {
			return errBodyTooSlow
		}
		byRate = left < hc.b.cfg.ClientTimeout
		return hc.c.SetReadDeadline(time.Now().Add(left))
	}
	var err error
	if hc.req.chunked {
		err = copyChunked(&up.io, hc.br, before, nil)
	} else {
		_, err = copyN(&up.io, hc.br, hc.req.contentLength, before, nil)
	}
	if byRate && isTimeout(err) {
		return errBodyTooSlow
	}
	return err
}

// tunnel passes bytes both ways after a 101 Switching Protocols, for as long as both sides
// keep the connection: the whole WebSocket is one session. Its bytes go through the event loop
// of tcp mode, which holds the tunnel's two descriptors and nothing else, and closes them with
// it; it returns once the loop is done.
func (hc *httpConn) tunnel(up *upstream) {
	hc.cw.setDeadline(time.Time{}) // the tunnel has timeouts of its own
	if n := hc.br.Buffered(); n > 0 {
		b, _ := hc.br.Peek(n)
		if _, err := up.conn.Write(b); err != nil {
			return
		}
		_, _ = hc.br.Discard(n)
	}
	if n := up.br.Buffered(); n > 0 {
		b, _ := up.br.Peek(n)
		if _, err := hc.c.Write(b); err != nil {
			return
		}
		_, _ = up.br.Discard(n)
	}
	done := make(chan struct{})
	if err := serveLoop(hc.c, up.conn, hc.b.cfg.ClientTimeout, func(_, toClient int64) {
		hc.cw.written += toClient
		close(done)
	}, nil); err != nil {
		hc.b.log.Debug("no event loop for a tunnel; copying with goroutines", "error", err)
		_, toClient := pipe(hc.c, up.conn, hc.b.cfg.ClientTimeout)
		hc.cw.written += toClient
		return
	}
	<-done
}

// clientWriter writes to the client with a write deadline TENDER_CLIENT_TIMEOUT ahead (a
// slidingDeadline), so that a client that stops reading a response is let go like one that
// stops sending, and its worker with it (nginx's send_timeout).
type clientWriter struct {
	c        net.Conn
	timeout  time.Duration
	deadline slidingDeadline
	fixed    bool  // setDeadline holds
	written  int64 // bytes sent to the client on this connection
}

func (w *clientWriter) Write(p []byte) (int, error) {
	if w.timeout > 0 && !w.fixed {
		if t, due := w.deadline.next(w.timeout); due {
			_ = w.c.SetWriteDeadline(t)
		}
	}
	n, err := w.c.Write(p)
	w.written += int64(n)
	return n, err
}

// setDeadline fixes the write deadline (zero: none) for the rest of the connection.
func (w *clientWriter) setDeadline(t time.Time) {
	w.fixed = true
	_ = w.c.SetWriteDeadline(t)
}

// fail answers the client with an error of tender's own and closes the connection.
func (hc *httpConn) fail(e *httpError) {
	hc.status = e.code
	body := "tender: " + e.msg + "\n"
	out := append(hc.out[:0], "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(e.code), 10)
	out = append(out, ' ')
	out = append(out, reason(e)...)
	out = append(out, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, "\r\nConnection: close\r\n\r\n"...)
	out = append(out, body...)
	hc.cw.setDeadline(time.Now().Add(time.Second))
	_, _ = hc.bw.Write(out)
	_ = hc.bw.Flush()
}

// reason is the reason phrase: the message up to its first colon.
func reason(e *httpError) string {
	for i := 0; i < len(e.msg); i++ {
		if e.msg[i] == ':' {
			return e.msg[:i]
		}
	}
	return e.msg
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}
