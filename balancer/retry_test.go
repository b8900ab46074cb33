package balancer

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// dyingWorker is a worker that dies with the first request it reads, as one SIGKILLed while
// it serves: its port closes, then the connection, without an answer. It counts the
// requests it read.
func dyingWorker(t *testing.T) *rawWorker {
	t.Helper()
	var w *rawWorker
	w = startRawWorker(t, func(*http.Request, net.Conn) bool {
		w.ln.Close()
		return false // the connection closes after the port
	})
	return w
}

// A GET whose worker dies with it, or a second one too, waits for a replacement and is
// answered by it, as long as one comes within TENDER_QUEUE_TIMEOUT: a GET failed with a 502
// when the worker that died was the last one routable (a rolling restart, SIGTTOU, kills). A
// GET that three workers died with is what kills them: it gets a 502, and the replacement never
// sees it (it was sent to every replacement in turn for TENDER_QUEUE_TIMEOUT, each dying).
func TestGETWaitsForAReplacementOfTheWorkersThatDied(t *testing.T) {
	for _, tc := range []struct {
		dying    int
		want     string
		answered int64 // by the replacement
	}{
		{1, "HTTP/1.1 200 OK", 1},
		{2, "HTTP/1.1 200 OK", 1},
		{3, "HTTP/1.1 502 Bad Gateway", 0},
	} {
		dying := tc.dying
		t.Run(fmt.Sprintf("%d die", dying), func(t *testing.T) {
			t.Parallel()
			var workers []*rawWorker
			for range dying {
				workers = append(workers, dyingWorker(t))
			}
			b := startBalancer(t, Config{}, workers...)
			b.router.queueTimeout = 5 * time.Second
			dead := slices.Clone(b.router.backends)
			var answered atomic.Int64
			replacement := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
				answered.Add(1)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				return true
			})
			go func() {
				// As the pool: the dead are removed, a replacement is added once ready.
				for _, w := range workers {
					for w.seen.Load() == 0 {
						time.Sleep(time.Millisecond)
					}
				}
				time.Sleep(100 * time.Millisecond)
				for _, be := range dead {
					b.Remove(be)
				}
				be := NewBackend(dying, replacement.ln.Addr().String())
				be.SetRoutable(true)
				b.Add(be)
			}()
			c := dial(t, b)
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, _ := io.ReadAll(c)
			if statusOf(string(got)) != tc.want || answered.Load() != tc.answered {
				t.Errorf("got %q, want %s, and the replacement answered %d times, want %d", got, tc.want, answered.Load(), tc.answered)
			}
			for i, w := range workers {
				if w.seen.Load() != 1 {
					t.Errorf("dying worker %d read the GET %d times, want once", i, w.seen.Load())
				}
			}
		})
	}
}

// A POST goes again only when no worker can have read it. One that met only workers that had
// died (their ports closed: the connects failed), five of them, waits for a replacement and is
// answered by it: it got a 502 after 4 tries. One that a worker read, and died without
// answering, is a 502 that says it may have been acted on, and never reaches the replacement.
func TestPOSTGoesAgainOnlyWhenUnread(t *testing.T) {
	for _, tc := range []struct {
		name    string
		workers func(t *testing.T) ([]*rawWorker, func() bool)
		want    string
	}{
		{"unread: five workers gone", func(t *testing.T) ([]*rawWorker, func() bool) {
			var gone []*rawWorker
			for range 5 {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				ln.Close()
				gone = append(gone, &rawWorker{ln: ln})
			}
			return gone, func() bool { return true }
		}, "HTTP/1.1 200 OK"},
		{"read: no answer", func(t *testing.T) ([]*rawWorker, func() bool) {
			w := dyingWorker(t)
			return []*rawWorker{w}, func() bool { return w.seen.Load() == 1 }
		}, "HTTP/1.1 502 Bad Gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			workers, dead := tc.workers(t)
			b := startBalancer(t, Config{}, workers...)
			b.router.queueTimeout = 5 * time.Second
			gone := slices.Clone(b.router.backends)
			replacement := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				return true
			})
			go func() {
				for !dead() {
					time.Sleep(time.Millisecond)
				}
				time.Sleep(100 * time.Millisecond)
				for _, be := range gone {
					b.Remove(be)
				}
				be := NewBackend(len(gone), replacement.ln.Addr().String())
				be.SetRoutable(true)
				b.Add(be)
			}()
			c := dial(t, b)
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, _ := io.ReadAll(c)
			if statusOf(string(got)) != tc.want {
				t.Errorf("got %q, want %s", got, tc.want)
			}
			wantRead := int32(0)
			if tc.want == "HTTP/1.1 200 OK" {
				wantRead = 1
			}
			if n := replacement.seen.Load(); n != wantRead {
				t.Errorf("the replacement read the POST %d times, want %d", n, wantRead)
			}
			if tc.want != "HTTP/1.1 200 OK" && !strings.Contains(string(got), "may have acted on the request") {
				t.Errorf("the 502 does not say the worker may have acted on the request: %q", got)
			}
		})
	}
}

// A worker may close an idle kept-alive connection at any time (RFC 9112 9.3): here each
// closes its connection right after each response, without Connection: close, as a server
// with a limit of one request a connection would. A GET that meets such closed connections
// goes again on a new one without a strike: the cap on workers that die with a request took
// them for three deaths, and every client got a 502 within 50 ms for a request no worker saw.
func TestClosedKeepAliveCostsNoStrike(t *testing.T) {
	var workers []*rawWorker
	for range 3 {
		workers = append(workers, startRawWorker(t, func(r *http.Request, c net.Conn) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return false
		}))
	}
	b := startBalancer(t, Config{}, workers...)
	const clients, each = 8, 100
	var ok atomic.Int64
	errs := make(chan string, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			c, err := net.Dial("tcp", b.Addr().String())
			if err != nil {
				errs <- err.Error()
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for range each {
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- err.Error()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Sprintf("%d %s", resp.StatusCode, body)
					return
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a client's GET failed: %s", e)
	}
	if ok.Load() != clients*each {
		t.Errorf("%d GETs answered, want %d", ok.Load(), clients*each)
	}
}
