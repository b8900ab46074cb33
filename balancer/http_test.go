package balancer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// rawWorker is a worker that answers each request it reads with whatever answer writes on the
// raw connection; answer returns false to close the connection. It counts the requests.
type rawWorker struct {
	ln     net.Listener
	seen   atomic.Int32 // requests
	conns  atomic.Int32
	closed atomic.Int32 // connections tender closed (or that ended otherwise)
}

func startRawWorker(t *testing.T, answer func(r *http.Request, c net.Conn) bool) *rawWorker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &rawWorker{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			w.conns.Add(1)
			go func() {
				defer w.closed.Add(1)
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, r.Body)
					w.seen.Add(1)
					if !answer(r, c) {
						return
					}
				}
			}()
		}
	}()
	return w
}

// startBalancer runs a balancer in http mode in front of the workers.
func startBalancer(t *testing.T, cfg Config, workers ...*rawWorker) *Balancer {
	t.Helper()
	cfg.Network, cfg.Addr, cfg.HTTP = "tcp", "127.0.0.1:0", true
	cfg.QueueSize, cfg.QueueTimeout, cfg.HeaderTimeout = 10, 300*time.Millisecond, 2*time.Second
	if cfg.ClientTimeout == 0 {
		cfg.ClientTimeout = 2 * time.Second
	}
	b, err := Listen(cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range workers {
		be := NewBackend(i, w.ln.Addr().String())
		be.SetRoutable(true)
		b.Add(be)
	}
	go b.Serve()
	t.Cleanup(b.Close)
	return b
}

// dial connects to the balancer, for the rest of the test.
func dial(t *testing.T, b *Balancer) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends raw on a new connection and returns what comes back until tender closes it
// or is silent for a moment.
func roundTrip(t *testing.T, b *Balancer, raw string) string {
	t.Helper()
	c := dial(t, b)
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	got, _ := io.ReadAll(c)
	return string(got)
}

func statusOf(resp string) string {
	line, _, _ := strings.Cut(resp, "\r\n")
	return line
}

// Bytes a worker sends beyond its response never reach the next client, whether they came
// with the response or after it (seen in a conformance run: a body after a HEAD, a second
// response after the first, served to whoever came next).
func TestWorkerBytesBeyondTheResponseAreNoAnswer(t *testing.T) {
	for name, extra := range map[string]func(net.Conn){
		"with the response": func(net.Conn) {},
		"after it":          func(c net.Conn) { time.Sleep(50 * time.Millisecond) },
	} {
		t.Run(name, func(t *testing.T) {
			w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
				if r.URL.Path == "/bad" {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					extra(c)
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!")
					return true
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood")
				return true
			})
			b := startBalancer(t, Config{}, w)
			roundTrip(t, b, "GET /bad HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
			time.Sleep(100 * time.Millisecond)
			for i := 0; i < 3; i++ {
				if got := roundTrip(t, b, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); !strings.HasSuffix(got, "\r\n\r\ngood") {
					t.Fatalf("the next client got %q", got)
				}
			}
		})
	}
}

// A response without a body (204, 304, an answer to HEAD) leaves its connection unused again:
// a worker that sent a body or a second response after it, 150 ms later, had it delivered
// to the next request on the kept-alive connection, another client's, 5 times in 5.
func TestNoReuseAfterAResponseWithoutABody(t *testing.T) {
	for _, tc := range []struct{ name, request, answer string }{
		{"204", "GET /nobody HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n"},
		{"304", "GET /nobody HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 304 Not Modified\r\n\r\n"},
		{"HEAD", "HEAD /nobody HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
				if r.URL.Path == "/nobody" {
					io.WriteString(c, tc.answer)
					time.Sleep(150 * time.Millisecond)
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!")
					return true
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood")
				return true
			})
			b := startBalancer(t, Config{}, w)
			for i := range 5 {
				first := dial(t, b)
				io.WriteString(first, tc.request)
				_ = first.SetReadDeadline(time.Now().Add(2 * time.Second))
				method, _, _ := strings.Cut(tc.request, " ")
				if resp, err := http.ReadResponse(bufio.NewReader(first), &http.Request{Method: method}); err != nil || resp.Body.Close() != nil {
					t.Fatalf("round %d: the first request: %v", i, err)
				}
				if got := roundTrip(t, b, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); !strings.HasSuffix(got, "\r\n\r\ngood") {
					t.Fatalf("round %d: the next client got %q", i, got)
				}
			}
		})
	}
}

// The worker reads a request as tender did: an absolute-form target comes to it in origin
// form with its host as Host (it came with a Host that disagreed), and HTTP/1.2 as HTTP/1.1.
func TestWorkerSeesTheTargetTenderRead(t *testing.T) {
	w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
		seen := r.RequestURI + " " + r.Host + " " + r.Proto
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(seen), seen)
		return true
	})
	b := startBalancer(t, Config{}, w)
	for raw, want := range map[string]string{
		"GET http://other.example/x?q HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n": "/x?q other.example HTTP/1.1",
		"GET /y HTTP/1.2\r\nHost: a\r\nConnection: close\r\n\r\n":                       "/y a HTTP/1.1",
	} {
		if got := roundTrip(t, b, raw); !strings.HasSuffix(got, "\r\n\r\n"+want) {
			t.Errorf("%q reached the worker as %q, want %q", raw, got, want)
		}
	}
	if got := roundTrip(t, b, "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"); statusOf(got) != "HTTP/1.1 400 Bad Request" {
		t.Errorf("a target of another scheme: %q, want 400", got)
	}
}

// A POST the worker read but did not answer is not sent again, even on a kept-alive
// connection (where the worker may also have closed it while idle): a 502, and the worker saw
// it once. A GET goes again, to another worker.
func TestUnansweredRequestIsRetriedOnlyWhenIdempotent(t *testing.T) {
	var posts atomic.Int32
	w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
		if r.Method == "POST" {
			posts.Add(1)
			return false
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	b := startBalancer(t, Config{}, w)
	if got := roundTrip(t, b, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); statusOf(got) != "HTTP/1.1 200 OK" {
		t.Fatalf("GET: %q", got)
	}
	// The POST goes on the connection the GET left idle.
	got := roundTrip(t, b, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
	if statusOf(got) != "HTTP/1.1 502 Bad Gateway" || posts.Load() != 1 {
		t.Errorf("POST: %q, the worker saw it %d times; want a 502 after one", got, posts.Load())
	}

	hangUp := startRawWorker(t, func(*http.Request, net.Conn) bool { return false })
	b = startBalancer(t, Config{}, hangUp, w)
	for i := 0; i < 4; i++ {
		if got := roundTrip(t, b, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); statusOf(got) != "HTTP/1.1 200 OK" {
			t.Fatalf("GET: %q", got)
		}
	}
	if hangUp.seen.Load() == 0 {
		t.Error("no GET went to the worker that hangs up: nothing was retried")
	}
}

// A kept-alive connection the worker closed while idle is not used again: a POST, which cannot
// be retried, goes on a new connection and is answered.
func TestIdleConnectionClosedByTheWorkerIsNotReused(t *testing.T) {
	w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return false // closes the connection without saying so in the response
	})
	b := startBalancer(t, Config{}, w)
	for i := 0; i < 3; i++ {
		if got := roundTrip(t, b, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); statusOf(got) != "HTTP/1.1 200 OK" {
			t.Fatalf("GET: %q", got)
		}
		time.Sleep(20 * time.Millisecond) // the worker's FIN arrives
		got := roundTrip(t, b, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
		if statusOf(got) != "HTTP/1.1 200 OK" {
			t.Fatalf("POST after the worker closed the idle connection: %q", got)
		}
	}
	if n := w.conns.Load(); n != 6 {
		t.Errorf("the worker saw %d connections, want 6 (one per request)", n)
	}
}

// Kept-alive connections left idle past idleTTL are closed without waiting for the next
// request: a worker that closed its side would otherwise leave them in CLOSE-WAIT, one
// descriptor each, for as long as no request came.
func TestIdleConnectionsAreClosedOnceStale(t *testing.T) {
	t.Parallel()
	w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	b := startBalancer(t, Config{}, w)
	for i := 0; i < 3; i++ {
		if got := roundTrip(t, b, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); statusOf(got) != "HTTP/1.1 200 OK" {
			t.Fatalf("GET: %q", got)
		}
	}
	if w.conns.Load() == w.closed.Load() {
		t.Fatal("no connection to the worker was kept alive")
	}
	deadline := time.Now().Add(idleTTL + 2*time.Second)
	for w.conns.Load() != w.closed.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d idle connections still open %v after their last use", w.conns.Load()-w.closed.Load(), w.conns.Load(), idleTTL+2*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A client that stops reading its response is let go after TENDER_CLIENT_TIMEOUT, and so is
// the worker's session: a download left unread held both for as long as the client liked.
func TestClientThatStopsReadingIsLetGo(t *testing.T) {
	t.Parallel()
	w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
		io.CopyN(c, zeros{}, 1<<30)
		return false
	})
	b := startBalancer(t, Config{ClientTimeout: 300 * time.Millisecond}, w)
	c := dial(t, b)
	if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	be := b.router.backends[0]
	deadline := time.Now().Add(5 * time.Second)
	for be.Sessions() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	for be.Sessions() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the worker's session is still held by a client that reads nothing")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// A malformed response is a 502, not a reason to ask again; so is a 101 nobody asked for.
func TestMalformedResponseIsNotRetried(t *testing.T) {
	for path, resp := range map[string]string{
		"/fold":   "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n",
		"/switch": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: Upgrade\r\n\r\n",
	} {
		w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
			io.WriteString(c, resp)
			return true
		})
		b := startBalancer(t, Config{}, w)
		got := roundTrip(t, b, "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n")
		if statusOf(got) != "HTTP/1.1 502 Bad Gateway" || w.seen.Load() != 1 {
			t.Errorf("%s: %q, the worker saw it %d times; want a 502 after one", path, got, w.seen.Load())
		}
	}
}

// A client that stops sending its body gets 408 once CLIENT_TIMEOUT has passed.
func TestStalledBodyIs408(t *testing.T) {
	w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		return true
	})
	b := startBalancer(t, Config{ClientTimeout: 200 * time.Millisecond}, w)
	c := dial(t, b)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("x", 20000))
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, _ := io.ReadAll(c)
	if statusOf(string(got)) != "HTTP/1.1 408 Request Timeout" {
		t.Errorf("got %q, want 408", got)
	}
}

// A GET that the only worker took and closed without an answer is a 502 at once: the worker is
// alive, and waiting in the queue for another would only end in a 503 at the queue timeout.
func TestUnansweredRequestWithNoOtherWorkerIs502AtOnce(t *testing.T) {
	w := startRawWorker(t, func(*http.Request, net.Conn) bool { return false })
	b := startBalancer(t, Config{}, w)
	start := time.Now()
	got := roundTrip(t, b, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if statusOf(got) != "HTTP/1.1 502 Bad Gateway" || time.Since(start) > 200*time.Millisecond {
		t.Errorf("got %q after %v, want a 502 at once", got, time.Since(start))
	}
}

// A malformed chunked body is the client's fault: 400, not 502.
func TestMalformedChunkedBodyIs400(t *testing.T) {
	w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		return true
	})
	b := startBalancer(t, Config{}, w)
	got := roundTrip(t, b, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;\nxx\r\n0\r\n\r\n")
	if statusOf(got) != "HTTP/1.1 400 Bad Request" {
		t.Errorf("got %q, want 400", got)
	}
}

// A response framed two ways (Transfer-Encoding and Content-Length) is read by its
// Transfer-Encoding, but its connection is not used again (RFC 9112 6.3).
func TestFaultyFramingIsNotReused(t *testing.T) {
	w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
		return true
	})
	b := startBalancer(t, Config{}, w)
	for i := 0; i < 2; i++ {
		got := roundTrip(t, b, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		if !strings.HasSuffix(got, "\r\n\r\n2\r\nok\r\n0\r\n\r\n") || strings.Contains(got, "Content-Length") {
			t.Fatalf("got %q", got)
		}
	}
	if n := w.conns.Load(); n != 2 {
		t.Errorf("the worker saw %d connections for 2 requests, want 2", n)
	}
}

// A 101 that comes before the request's body is through is a 502: the body's copy would read
// the client beside the tunnel.
func TestUpgradeBeforeTheBodyIs502(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil { // the head only
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
		}
		time.Sleep(time.Second)
	}()
	b := startBalancer(t, Config{}, &rawWorker{ln: ln})
	got := roundTrip(t, b, "POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("x", 20000))
	if statusOf(got) != "HTTP/1.1 502 Bad Gateway" {
		t.Errorf("got %q, want 502", got)
	}
}

// TENDER_WORKER_TIMEOUT: a worker silent for that long before its answer, or within it, is
// given up on; its time runs from the end of the request, and a tunnel is not timed.
func TestSilentWorker(t *testing.T) {
	const timeout = 200 * time.Millisecond
	// stallAfter is a worker that sends part of its answer, then nothing for far longer than
	// the timeout.
	stallAfter := func(t *testing.T, part string) *rawWorker {
		return startRawWorker(t, func(_ *http.Request, c net.Conn) bool {
			io.WriteString(c, part)
			time.Sleep(10 * timeout)
			return false
		})
	}
	t.Run("no answer is a 504, not asked again", func(t *testing.T) {
		t.Parallel()
		w := startRawWorker(t, func(*http.Request, net.Conn) bool {
			time.Sleep(3 * timeout)
			return false
		})
		b := startBalancer(t, Config{WorkerTimeout: timeout}, w, startRawWorker(t, func(*http.Request, net.Conn) bool { return false }))
		b.router.backends[1].SetRoutable(false) // a worker a retry would go to, were there one
		start := time.Now()
		got := roundTrip(t, b, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if statusOf(got) != "HTTP/1.1 504 Gateway Timeout" || !strings.Contains(got, "did not answer within 200ms") {
			t.Errorf("got %q, want a 504", got)
		}
		if took := time.Since(start); took < timeout || took > 3*timeout {
			t.Errorf("the 504 came after %v, want about %v", took, timeout)
		}
		if w.seen.Load() != 1 {
			t.Errorf("the worker saw the request %d times, want once", w.seen.Load())
		}
	})
	t.Run("a slow upload does not count", func(t *testing.T) {
		t.Parallel()
		w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return true
		})
		b := startBalancer(t, Config{WorkerTimeout: timeout}, w)
		c := dial(t, b)
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 60000\r\n\r\n")
		for range 3 {
			io.WriteString(c, strings.Repeat("x", 20000))
			time.Sleep(timeout)
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		got, _ := bufio.NewReader(c).ReadString('k')
		if statusOf(got) != "HTTP/1.1 200 OK" {
			t.Errorf("got %q, want 200", got)
		}
	})
	t.Run("an answer that keeps coming is whole, and the connection is reused", func(t *testing.T) {
		t.Parallel()
		w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
			for range 4 {
				time.Sleep(timeout / 2)
				io.WriteString(c, "1\r\nx\r\n")
			}
			io.WriteString(c, "0\r\n\r\n")
			return true
		})
		b := startBalancer(t, Config{WorkerTimeout: timeout}, w)
		c := dial(t, b)
		br := bufio.NewReader(c)
		for i := range 2 {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			body, err := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(body) != "xxxx" || err != nil {
				t.Errorf("request %d: %d %q %v, want 200 xxxx", i, resp.StatusCode, body, err)
			}
			time.Sleep(2 * timeout) // the idle worker connection outlives a deadline left on it
		}
		if n := w.conns.Load(); n != 1 {
			t.Errorf("the worker saw %d connections, want 1, reused", n)
		}
	})
	t.Run("a worker silent within its answer is cut off", func(t *testing.T) {
		t.Parallel()
		w := stallAfter(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
		b := startBalancer(t, Config{WorkerTimeout: timeout}, w)
		start := time.Now()
		got := roundTrip(t, b, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if !strings.HasSuffix(got, "\r\n\r\n0123456789") || time.Since(start) > 4*timeout {
			t.Errorf("got %q after %v, want the part sent, then the connection closed after about %v", got, time.Since(start), timeout)
		}
	})
	t.Run("a response that ends with the connection is reset when cut", func(t *testing.T) {
		t.Parallel()
		w := stallAfter(t, "HTTP/1.1 200 OK\r\n\r\npart-of-")
		b := startBalancer(t, Config{WorkerTimeout: timeout}, w)
		c := dial(t, b)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		got, err := io.ReadAll(c)
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("got %q and %v, want the connection reset: a close would make the part look whole", got, err)
		}
	})
	t.Run("a worker that stops reading the request is a 504", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() { // a worker that takes connections and never reads them
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		w := &rawWorker{ln: ln}
		b := startBalancer(t, Config{WorkerTimeout: timeout, ClientTimeout: 10 * timeout}, w)
		c := dial(t, b)
		go func() {
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1073741824\r\n\r\n")
			io.CopyN(c, zeros{}, 1<<30) // until tender stops reading it
		}()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, _ := bufio.NewReader(c).ReadString('\n')
		if got != "HTTP/1.1 504 Gateway Timeout\r\n" {
			t.Errorf("got %q, want a 504", got)
		}
	})
	t.Run("a silence just short of the timeout is not cut", func(t *testing.T) {
		t.Parallel()
		const long = 2 * time.Second
		w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na")
			time.Sleep(long / 13) // read without moving the deadline on: under a tenth
			io.WriteString(c, "b")
			time.Sleep(long * 95 / 100) // past the timeout from the deadline's last move
			io.WriteString(c, "c")
			return false
		})
		b := startBalancer(t, Config{WorkerTimeout: long}, w)
		c := dial(t, b)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(3 * long))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if string(body) != "abc" || err != nil {
			t.Errorf("got %q, %v; want abc whole", body, err)
		}
	})
	t.Run("a tunnel is not timed", func(t *testing.T) {
		t.Parallel()
		w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			time.Sleep(2 * timeout)
			io.WriteString(c, "hello")
			return false
		})
		b := startBalancer(t, Config{WorkerTimeout: timeout}, w)
		got := roundTrip(t, b, "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		if statusOf(got) != "HTTP/1.1 101 Switching Protocols" || !strings.HasSuffix(got, "hello") {
			t.Errorf("got %q, want the 101 and hello", got)
		}
	})
}
