package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tenderinit/tender/apps"
)

// Front is a pool behind tender's front socket.
type Front struct {
	*Pool
	Addr string
}

func startFront(t *testing.T, protocol string, env []string) *Front {
	t.Helper()
	addr := "127.0.0.1:" + freePort(t)
	env = append([]string{"TENDER_LISTEN=" + addr, "TENDER_PROTOCOL=" + protocol}, env...)
	return &Front{Pool: startPool(t, env, "--", bin.testapp, "serve"), Addr: addr}
}

// get sends one request through the front and returns the status and body.
func (f *Front) get(client *http.Client, path string) (int, string, error) {
	resp, err := client.Get("http://" + f.Addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func sessions(st apps.Status) []int64 {
	var out []int64
	for _, w := range st.Workers {
		out = append(out, w.Sessions)
	}
	return out
}

// The seed scenario: 4 workers with unlimited concurrency, 100 concurrent long sessions held
// open by the workers: every worker holds 25 ± 1.
func TestSeedScenarioSpreadsLongSessions(t *testing.T) {
	for _, proto := range []string{"http", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			f := startFront(t, proto, []string{"TENDER_WORKERS=4"})
			f.waitFor("4 ready", 10*time.Second, nReady(4))
			var wg sync.WaitGroup
			var failures atomic.Int32
			for i := 0; i < 100; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := net.Dial("tcp", f.Addr)
					if err != nil {
						failures.Add(1)
						return
					}
					defer c.Close()
					fmt.Fprintf(c, "GET /hold?ms=4000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
					b, _ := io.ReadAll(c)
					if !strings.HasPrefix(string(b), "HTTP/1.1 200") {
						failures.Add(1)
					}
				}()
			}
			st := f.waitFor("100 sessions in flight", 10*time.Second, func(st apps.Status) bool {
				var total int64
				for _, s := range sessions(st) {
					total += s
				}
				return total == 100
			})
			for _, w := range st.Workers {
				if w.Sessions < 24 || w.Sessions > 26 {
					t.Errorf("sessions per worker %v: want 25 ± 1 each", sessions(st))
					break
				}
			}
			wg.Wait()
			if failures.Load() != 0 {
				t.Errorf("%d of the 100 sessions failed", failures.Load())
			}
			// A session is counted once tender has closed both of its ends, which may come just
			// after the client has read the last byte.
			processed := func(st apps.Status) (n uint64) {
				for _, w := range st.Workers {
					n += w.Processed
				}
				return n
			}
			st = f.waitFor("100 sessions processed", 5*time.Second, func(st apps.Status) bool { return processed(st) >= 100 })
			if n := processed(st); n != 100 {
				t.Errorf("processed %d sessions in all, want 100", n)
			}
			f.Signal(syscall.SIGTERM)
			f.Wait(15 * time.Second)
		})
	}
}

// rawGet sends one GET on a connection of its own and returns the answer's body, or "" when
// none came within timeout. The connection is closed when done: a session each, in tcp mode too.
func rawGet(addr, path string, timeout time.Duration) string {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// beginDownload sends a GET on a connection of its own and returns once the answer's head and
// first line have come; the rest is read in the background, and the connection closed with the
// test.
func beginDownload(t *testing.T, addr, path string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	go io.Copy(io.Discard, resp.Body)
}

// A worker whose event loop is blocked (the test app's /block holds every request of its
// worker) gets no new session while another worker answers, though it holds fewer sessions:
// the other streams two long answers. Counted by sessions alone, every other new session went
// to the blocked worker, to wait out the block. Once a second a stalled worker is given one
// session, in case it was only slow: the requests go in under a second, and at most one per
// second that passed may go to it.
func TestBlockedWorkerGetsNoNewSession(t *testing.T) {
	for _, proto := range []string{"http", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			f := startFront(t, proto, []string{"TENDER_WORKERS=2"})
			f.waitFor("2 ready", 10*time.Second, nReady(2))
			blocked := make(chan string, 1)
			go func() { blocked <- rawGet(f.Addr, "/block?ms=6000", 10*time.Second) }()
			start := time.Now()
			st := f.waitFor("the block in flight", 5*time.Second, func(st apps.Status) bool { return st.Workers[0].Sessions+st.Workers[1].Sessions == 1 })
			stuck, other := st.Workers[0].ID, st.Workers[1].ID
			if st.Workers[1].Sessions == 1 {
				stuck, other = other, stuck
			}
			// One download at a time, each begun (its head read) before the next: the stalled
			// worker is silent while others answer, not in a pool that answers nobody.
			for i := 0; i < 2; i++ {
				beginDownload(t, f.Addr, "/drip?ms=8000")
			}
			f.waitFor("two downloads from the other worker", 5*time.Second, func(st apps.Status) bool {
				for _, w := range st.Workers {
					if w.ID == other && w.Sessions == 2 {
						return true
					}
				}
				return false
			})
			answers := make(chan string, 10)
			for i := 0; i < 10; i++ {
				go func() { answers <- rawGet(f.Addr, "/", 3*time.Second) }()
			}
			sentWithin := time.Since(start)
			if sentWithin >= 10*time.Second {
				t.Fatalf("the requests went in %v after the block: ten probes were allowed, and the test cannot tell", sentWithin)
			}
			toStuck := 0
			for i := 0; i < 10; i++ {
				a := <-answers
				if id, _, _ := strings.Cut(a, " "); id != strconv.Itoa(other) {
					toStuck++ // no answer within 3 s: it waits behind the block
				}
			}
			if probes := int(sentWithin / time.Second); toStuck > probes {
				t.Errorf("%d of 10 requests went to the blocked worker %d (%d probes allowed after %v), want none but probes",
					toStuck, stuck, probes, sentWithin.Round(time.Millisecond))
			}
			if got := <-blocked; !strings.HasPrefix(got, strconv.Itoa(stuck)+" ") {
				t.Errorf("the blocking request got %q, want the answer of worker %d", got, stuck)
			}
			f.Signal(syscall.SIGTERM)
			f.Wait(15 * time.Second)
		})
	}
}

// Concurrency 1 with 4 workers and 8 concurrent requests: 4 are served, 4 wait in the queue
// and are served in order as slots free; with the queue full, the next gets 503 at once. The
// first four hold their workers 5, 5.2, 5.4 and 5.6 s, so that the slots free one at a time
// and the queued requests, each held 300 ms, must end in the order they came; 5 s leave room
// for the eight looks at the status that set the scene, which take a while on a loaded
// machine (with holds of 400 ms, the first request ended before the fourth was seen).
func TestConcurrencyLimitAndQueue(t *testing.T) {
	t.Parallel()
	f := startFront(t, "http", []string{"TENDER_WORKERS=4", "TENDER_CONCURRENCY=1", "TENDER_QUEUE_SIZE=4"})
	f.waitFor("4 ready", 10*time.Second, nReady(4))
	type result struct {
		i    int
		code int
		at   time.Duration
	}
	results := make(chan result, 8)
	start := time.Now()
	for i := 0; i < 8; i++ {
		hold := 300
		if i < 4 {
			hold = 5000 + 200*i
		}
		go func() {
			code, _, _ := f.get(&http.Client{}, fmt.Sprintf("/hold?ms=%d", hold))
			results <- result{i, code, time.Since(start)}
		}()
		if i >= 4 {
			waitQueueLen(t, f, i-3) // queued in the order sent
		} else {
			f.waitFor("sessions in flight", 5*time.Second, func(st apps.Status) bool {
				var n int64
				for _, s := range sessions(st) {
					n += s
				}
				return n == int64(i+1)
			})
		}
	}
	st, _ := f.Status()
	for _, w := range st.Workers {
		if w.Sessions != 1 {
			t.Errorf("sessions %v with concurrency 1: want 1 each", sessions(st))
			break
		}
	}
	if st.Queue != 4 {
		t.Errorf("queue %d, want 4", st.Queue)
	}
	// The queue is full: the next request is refused at once.
	t0 := time.Now()
	code, body, err := f.get(&http.Client{}, "/")
	if code != 503 || time.Since(t0) > 500*time.Millisecond {
		t.Errorf("past a full queue: %d %q %v after %v, want 503 at once", code, body, err, time.Since(t0))
	}
	var queued []int
	for i := 0; i < 8; i++ {
		r := <-results
		if r.code != 200 {
			t.Errorf("request %d got %d", r.i, r.code)
		}
		if r.i >= 4 {
			queued = append(queued, r.i)
		}
	}
	if fmt.Sprint(queued) != "[4 5 6 7]" {
		t.Errorf("the queued requests ended in the order %v, want [4 5 6 7]: first come, first served", queued)
	}
	f.Signal(syscall.SIGTERM)
	f.Wait(15 * time.Second)
}

func waitQueueLen(t *testing.T, f *Front, n int) {
	t.Helper()
	f.waitFor(fmt.Sprintf("%d queued", n), 5*time.Second, func(st apps.Status) bool { return st.Queue == n })
}

// load sends requests from n clients until stop is closed, and counts them.
func load(f *Front, n int, stop <-chan struct{}) (ok, failed *atomic.Int64, errs chan string) {
	ok, failed = &atomic.Int64{}, &atomic.Int64{}
	errs = make(chan string, 100)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body, err := f.get(client, "/")
				if err == nil && code == 200 {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				select {
				case errs <- fmt.Sprintf("%d %q %v", code, body, err):
				default:
				}
			}
		}()
	}
	go func() { wg.Wait(); close(errs) }()
	return ok, failed, errs
}

// servedAtLeast waits until the load has been served n requests, for at most within: a slow
// machine serves fewer in a given time, and the tests count requests rather than seconds.
func servedAtLeast(t *testing.T, ok *atomic.Int64, n int64, within time.Duration) {
	t.Helper()
	eventually(t, within, fmt.Sprintf("%d requests served", n), func() bool { return ok.Load() >= n })
}

// SIGKILL a worker while clients send a steady stream of new requests: none fails.
func TestKilledWorkerLosesNoRequest(t *testing.T) {
	t.Parallel()
	f := startFront(t, "http", []string{"TENDER_WORKERS=3"})
	st := f.waitFor("3 ready", 10*time.Second, nReady(3))
	stop := make(chan struct{})
	ok, failed, errs := load(f, 8, stop)
	servedAtLeast(t, ok, 50, 20*time.Second)
	killInNamespace(t, f.Run, st.Workers[1].Pid, syscall.SIGKILL)
	servedAtLeast(t, ok, ok.Load()+100, 20*time.Second)
	close(stop)
	for e := range errs {
		t.Errorf("a request failed: %s", e)
	}
	if failed.Load() != 0 {
		t.Errorf("%d requests served, %d failed", ok.Load(), failed.Load())
	}
	f.waitFor("the killed worker replaced", 10*time.Second, nReady(3))
	f.Signal(syscall.SIGTERM)
	f.Wait(15 * time.Second)
}

// SIGHUP under load: every worker is replaced, never fewer than N-1 ready, no failed request.
func TestRollingRestartUnderLoad(t *testing.T) {
	t.Parallel()
	const n = 3
	f := startFront(t, "http", []string{"TENDER_WORKERS=3"})
	before := f.waitFor("3 ready", 10*time.Second, nReady(n))
	stop := make(chan struct{})
	ok, failed, errs := load(f, 6, stop)
	servedAtLeast(t, ok, 50, 20*time.Second)
	atHup := ok.Load()
	f.Signal(syscall.SIGHUP)
	fewest := n
	eventually(t, 20*time.Second, "every worker replaced", func() bool {
		st, err := f.Status()
		if err != nil {
			return false
		}
		fewest = min(fewest, len(ready(st)))
		return nReady(n)(st) && allNew(before, st)
	})
	duringRoll := ok.Load() - atHup
	servedAtLeast(t, ok, ok.Load()+50, 20*time.Second)
	close(stop)
	for e := range errs {
		t.Errorf("a request failed: %s", e)
	}
	if fewest < n-1 {
		t.Errorf("at one moment only %d workers were ready, want at least %d", fewest, n-1)
	}
	if duringRoll == 0 || failed.Load() != 0 {
		t.Errorf("%d requests served (%d during the rolling restart), %d failed", ok.Load(), duringRoll, failed.Load())
	}
	f.Signal(syscall.SIGTERM)
	f.Wait(15 * time.Second)
}

// TENDER_MAX_REQUESTS recycles workers without a failed request.
func TestMaxRequestsRecycles(t *testing.T) {
	t.Parallel()
	f := startFront(t, "http", []string{"TENDER_WORKERS=2", "TENDER_MAX_REQUESTS=100"})
	before := f.waitFor("2 ready", 10*time.Second, nReady(2))
	stop := make(chan struct{})
	ok, failed, errs := load(f, 4, stop)
	eventually(t, 20*time.Second, "both workers recycled", func() bool {
		st, err := f.Status()
		return err == nil && nReady(2)(st) && allNew(before, st)
	})
	close(stop)
	for e := range errs {
		t.Errorf("a request failed: %s", e)
	}
	if failed.Load() != 0 || !f.logged("TENDER_MAX_REQUESTS") {
		t.Errorf("%d served, %d failed; log:\n%s", ok.Load(), failed.Load(), f.Stderr)
	}
	f.Signal(syscall.SIGTERM)
	f.Wait(15 * time.Second)
}

func TestWebSocketUpgrade(t *testing.T) {
	t.Parallel()
	f := startFront(t, "http", []string{"TENDER_WORKERS=2"})
	f.waitFor("2 ready", 10*time.Second, nReady(2))
	c, err := net.Dial("tcp", f.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("upgrade answered %v %v", resp, err)
	}
	for i := 0; i < 3; i++ {
		fmt.Fprintf(c, "message %d\n", i)
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("echo message %d\n", i) {
			t.Fatalf("through the tunnel: %q %v", line, err)
		}
	}
	// The whole upgraded connection is one session.
	st, _ := f.Status()
	var inFlight int64
	for _, s := range sessions(st) {
		inFlight += s
	}
	if inFlight != 1 {
		t.Errorf("sessions %v while the WebSocket is open, want 1 in all", sessions(st))
	}
	c.Close()
	f.waitFor("the session over", 5*time.Second, func(st apps.Status) bool {
		for _, s := range sessions(st) {
			if s != 0 {
				return false
			}
		}
		return true
	})
	f.Signal(syscall.SIGTERM)
	f.Wait(15 * time.Second)
}

// A 100 MB upload is streamed: tender's RSS stays flat.
func TestLargeUploadIsStreamed(t *testing.T) {
	t.Parallel()
	f := startFront(t, "http", []string{"TENDER_WORKERS=1"})
	f.waitFor("1 ready", 10*time.Second, nReady(1))
	tender := f.TenderPid()
	rss := func() int {
		n, _ := strconv.Atoi(strings.Fields(procStatus(t, tender)["VmRSS"])[0])
		return n
	}
	base := rss()
	peak := base
	done, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-done:
				peak = max(peak, rss())
				return
			case <-time.After(20 * time.Millisecond):
				peak = max(peak, rss())
			}
		}
	}()
	const size = 100 << 20
	body := io.LimitReader(zeros{}, size)
	req, _ := http.NewRequest("POST", "http://"+f.Addr+"/echo", body)
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	close(done)
	<-sampled // peak is the sampler's until it is done
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(got)) != strconv.Itoa(size) {
		t.Errorf("the worker read %q bytes, want %d", got, size)
	}
	if peak-base > 16<<10 {
		t.Errorf("tender's RSS went from %d KiB to %d KiB during a 100 MB upload", base, peak)
	}
	// Chunked too.
	req, _ = http.NewRequest("POST", "http://"+f.Addr+"/echo", io.LimitReader(zeros{}, 10<<20))
	req.ContentLength = -1
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(got)) != strconv.Itoa(10<<20) {
		t.Errorf("a chunked upload: the worker read %q bytes", got)
	}
	f.Signal(syscall.SIGTERM)
	f.Wait(15 * time.Second)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// trickle connects to addr, sends head, then piece(i) every interval, n times (until a write
// fails), from a goroutine of its own. It returns the connection, closed with the test, and
// when head went.
func trickle(t *testing.T, addr, head string, n int, every time.Duration, piece func(i int) string) (net.Conn, time.Time) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	start := time.Now()
	io.WriteString(c, head)
	go func() {
		for i := range n {
			time.Sleep(every)
			if _, err := io.WriteString(c, piece(i)); err != nil {
				return
			}
		}
	}()
	return c, start
}

// A slowloris client is cut off by the header timeout and never holds a worker's slot.
func TestSlowlorisIsCutOff(t *testing.T) {
	t.Parallel()
	f := startFront(t, "http", []string{"TENDER_WORKERS=1", "TENDER_CONCURRENCY=1", "TENDER_HEADER_TIMEOUT=1s"})
	f.waitFor("1 ready", 10*time.Second, nReady(1))
	c, start := trickle(t, f.Addr, "GET / HTTP/1.1\r\nHost: t\r\n", 10, 300*time.Millisecond,
		func(i int) string { return fmt.Sprintf("X-Slow-%d: 1\r\n", i) })
	// Meanwhile the one slot of the one worker is free for others.
	if code, _, err := f.get(&http.Client{Timeout: 2 * time.Second}, "/"); code != 200 {
		t.Errorf("a normal request while a slowloris sends: %d %v", code, err)
	}
	b, _ := io.ReadAll(c)
	if took := time.Since(start); !strings.HasPrefix(string(b), "HTTP/1.1 408") || took > 3*time.Second {
		t.Errorf("the slowloris got %q after %v, want 408 after about 1s", b, took)
	}
	f.Signal(syscall.SIGTERM)
	f.Wait(15 * time.Second)
}

// Bad input gets clear status codes and leaks nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	admin := "127.0.0.1:" + freePort(t)
	f := startFront(t, "http", []string{"TENDER_WORKERS=1", "TENDER_ADMIN=" + admin})
	f.waitFor("1 ready", 10*time.Second, nReady(1))
	tender := f.TenderPid()
	counts := func() (int, float64) {
		time.Sleep(200 * time.Millisecond) // let closed connections' goroutines end
		return len(openFds(t, tender)), metric(t, admin, "go_goroutines")
	}
	fds0, gor0 := counts()
	for _, tc := range []struct {
		raw  string
		want string
	}{
		{"GARBAGE\r\n\r\n", "HTTP/1.1 400"},
		{"GET / HTTP/1.1\r\nHost: t\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n", "HTTP/1.1 431"},
		{"GET / HTTP/1.1\r\nHost: t\r\n" + strings.Repeat("X-A: "+strings.Repeat("a", 4000)+"\r\n", 10) + "\r\n", "HTTP/1.1 431"},
		{"GET / HTTP/2.0\r\n\r\n", "HTTP/1.1 505"},
		{"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 400"},
		{"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
	} {
		c, err := net.Dial("tcp", f.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(tc.raw))
		b, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(b), tc.want) {
			t.Errorf("%.40q: got %.60q, want %s", tc.raw, b, tc.want)
		}
	}
	// Clients that reset mid-body, a hundred times.
	for i := 0; i < 100; i++ {
		c, err := net.Dial("tcp", f.Addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n%s", strings.Repeat("x", 1000))
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	eventually(t, 5*time.Second, "no session left in flight", func() bool {
		st, err := f.Status()
		return err == nil && st.Workers[0].Sessions == 0
	})
	fds1, gor1 := counts()
	if fds1 > fds0+1 || gor1 > gor0+2 { // +1/+2: the status call and admin's own connection
		t.Errorf("fds %d -> %d, goroutines %v -> %v after bad clients", fds0, fds1, gor0, gor1)
	}
	// The worker is still fine.
	if code, _, err := f.get(&http.Client{}, "/"); code != 200 {
		t.Errorf("after bad clients: %d %v", code, err)
	}
	f.Signal(syscall.SIGTERM)
	f.Wait(15 * time.Second)
}

// metric reads one value from tender's /metrics, which must parse as Prometheus text.
func metric(t *testing.T, admin, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation) // classic Prometheus names
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse as Prometheus text: %v", err)
	}
	fam, ok := families[name]
	if !ok || len(fam.Metric) == 0 {
		t.Fatalf("/metrics has no %s", name)
	}
	m := fam.Metric[0]
	if strings.HasPrefix(name, "tender_") && (m.Untyped != nil || fam.GetHelp() == "") {
		t.Errorf("/metrics has no # TYPE or # HELP for %s", name)
	}
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	case m.Histogram != nil: // its count, of the type the balancer serves
		if l := m.GetLabel(); len(l) != 1 || l[0].GetName() != "type" || l[0].GetValue() != "web" {
			t.Errorf("%s has labels %v, want type=web", name, l)
		}
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// The admin endpoint, with the histograms of the requests that went through and, with
// TENDER_ACCESS_LOG=on, their lines in the log (at info level, though tender logs only warnings).
func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	admin := "127.0.0.1:" + freePort(t)
	f := startFront(t, "http", []string{"TENDER_WORKERS=2", "TENDER_ADMIN=" + admin, "TENDER_ACCESS_LOG=on", "TENDER_LOG_LEVEL=warn"})
	f.waitFor("2 ready", 10*time.Second, nReady(2))
	for i := 0; i < 10; i++ {
		f.get(&http.Client{}, "/")
	}
	for _, name := range []string{"tender_request_duration_seconds", "tender_queue_wait_seconds"} {
		if got := metric(t, admin, name); got != 10 {
			t.Errorf("%s counts %v requests, want 10", name, got)
		}
	}
	if n := strings.Count(f.Stderr.String(), "tender.access: request: method=GET path=/ status=200 bytes="); n != 10 {
		t.Errorf("%d access log lines of the 10 requests:\n%s", n, f.Stderr.String())
	}
	resp, err := http.Get("http://" + admin + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz with ready workers: %v %v", resp, err)
	}
	if got := metric(t, admin, "tender_queue_length"); got != 0 {
		t.Errorf("tender_queue_length %v", got)
	}
	if got := metric(t, admin, "tender_workers"); got != 2 {
		t.Errorf("tender_workers %v, want 2 ready", got)
	}
	resp, err = http.Get("http://" + admin + "/metrics")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if c := strings.Count(string(b), "tender_worker_processed_total{"); c != 2 {
			t.Errorf("tender_worker_processed_total for %d workers, want 2:\n%s", c, b)
		}
	}
	resp, err = http.Get("http://" + admin + "/status")
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("/status: %v %v", resp, err)
	}
	f.Signal(syscall.SIGTERM)
	f.Wait(15 * time.Second)
}

// Healthz answers 503 while no worker is ready.
func TestHealthzWithoutReadyWorker(t *testing.T) {
	t.Parallel()
	admin := "127.0.0.1:" + freePort(t)
	p := startPool(t, []string{"TENDER_WORKERS=2", "TENDER_ADMIN=" + admin}, "--", bin.testapp, "serve", "-no-listen")
	var resp *http.Response
	eventually(t, 5*time.Second, "the admin endpoint", func() bool {
		var err error
		resp, err = http.Get("http://" + admin + "/healthz")
		return err == nil
	})
	if resp.StatusCode != 503 {
		t.Errorf("/healthz with no worker ready: %d, want 503", resp.StatusCode)
	}
	p.Signal(syscall.SIGTERM)
	p.Wait(15 * time.Second)
}

func TestForwardedHeadersAndUnixFront(t *testing.T) {
	t.Parallel()
	sock := t.TempDir() + "/front.sock"
	p := startPool(t, []string{"TENDER_WORKERS=1", "TENDER_LISTEN=unix:" + sock}, "--", bin.testapp, "serve")
	p.waitFor("1 ready", 10*time.Second, nReady(1))
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("unix", sock)
	}}}
	resp, err := client.Get("http://t/headers")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "X-Forwarded-Proto: http") {
		t.Errorf("the worker saw headers:\n%s", b)
	}
	p.Signal(syscall.SIGTERM)
	p.Wait(15 * time.Second)

	f := startFront(t, "http", []string{"TENDER_WORKERS=1"})
	f.waitFor("1 ready", 10*time.Second, nReady(1))
	req, _ := http.NewRequest("GET", "http://"+f.Addr+"/headers", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "X-Forwarded-For: 203.0.113.7, 127.0.0.1") {
		t.Errorf("the worker saw headers:\n%s", b)
	}
	f.Signal(syscall.SIGTERM)
	f.Wait(15 * time.Second)
}

// SIGTERM with sessions in flight: tender stops accepting, the sessions finish, then it exits 0.
func TestGracefulStopFinishesSessions(t *testing.T) {
	for _, proto := range []string{"http", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			f := startFront(t, proto, []string{"TENDER_WORKERS=2", "TENDER_STOP_TIMEOUT=8s"})
			f.waitFor("2 ready", 10*time.Second, nReady(2))
			results := make(chan string, 4)
			// One connection a request: in tcp mode a kept-alive connection is a session that
			// lasts as long as the client keeps it.
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			for i := 0; i < 4; i++ {
				go func() {
					code, body, err := f.get(client, "/hold?ms=1500")
					results <- fmt.Sprintf("%d %s %v", code, strings.TrimSpace(body), err)
				}()
			}
			f.waitFor("4 sessions in flight", 5*time.Second, func(st apps.Status) bool {
				return st.Workers[0].Sessions+st.Workers[1].Sessions == 4
			})
			start := time.Now()
			f.Signal(syscall.SIGTERM)
			// New connections are refused once the front is closed.
			eventually(t, 2*time.Second, "the front socket closed", func() bool {
				c, err := net.DialTimeout("tcp", f.Addr, 100*time.Millisecond)
				if err == nil {
					c.Close()
				}
				return err != nil
			})
			for i := 0; i < 4; i++ {
				if r := <-results; !strings.HasPrefix(r, "200 ") {
					t.Errorf("a session in flight at SIGTERM got %s", r)
				}
			}
			if code := f.Wait(10 * time.Second); code != 0 {
				t.Errorf("exit status %d", code)
			}
			if took := time.Since(start); took > 4*time.Second {
				t.Errorf("stopping took %v", took)
			}
		})
	}
}

// tender short of descriptors (RLIMIT_NOFILE 64, with 40 sessions of two descriptors each at
// once) loses no session: it holds as many clients as it can connect on, the others wait in
// the kernel's accept queue, and a connect that fails for want of a descriptor is tried again
// rather than blamed on the worker (which once left sessions queued for a worker they had
// excluded, all idle, until TENDER_QUEUE_TIMEOUT).
func TestFewDescriptorsLoseNoSession(t *testing.T) {
	for _, protocol := range []string{"http", "tcp"} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ctl, addr := filepath.Join(dir, "control.sock"), "127.0.0.1:"+freePort(t)
			env := []string{"TENDER_CONTROL=" + ctl, "TENDER_LISTEN=" + addr, "TENDER_PROTOCOL=" + protocol,
				"TENDER_WORKERS=2", "TENDER_QUEUE_TIMEOUT=5s"}
			run := startTenderFrom(t, "ulimit -n 64", AsPID1, env, "--", bin.testapp, "serve")
			f := &Front{Pool: &Pool{Run: run, Control: ctl, Dir: dir}, Addr: addr}
			f.waitFor("2 ready", 10*time.Second, nReady(2))

			client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			codes := make([]int, 40)
			errs := make([]error, len(codes))
			var wg sync.WaitGroup
			for i := range codes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					codes[i], _, errs[i] = f.get(client, "/hold?ms=300")
				}()
			}
			wg.Wait()
			for i := range codes {
				if codes[i] != 200 {
					t.Errorf("session %d: status %d, error %v", i, codes[i], errs[i])
				}
			}
			if n := strings.Count(f.Stderr.String(), "accept failed"); n > 2 {
				t.Errorf("%d warnings of a failed accept: want them rare\n%s", n, f.Stderr)
			}
		})
	}
}

// TENDER_WORKER_TIMEOUT reaches the balancer: a request the worker holds past it is a 504, one
// it answers within it goes through.
func TestWorkerTimeoutIs504(t *testing.T) {
	t.Parallel()
	front := "127.0.0.1:" + freePort(t)
	p := startPool(t, []string{"TENDER_WORKERS=1", "TENDER_LISTEN=" + front, "TENDER_WORKER_TIMEOUT=300ms"}, "--", bin.testapp, "serve")
	p.waitFor("1 ready", 10*time.Second, nReady(1))
	c := http.Client{Timeout: 5 * time.Second}
	for _, tc := range []struct {
		ms   int
		want int
	}{{50, 200}, {2000, 504}} {
		resp, err := c.Get(fmt.Sprintf("http://%s/hold?ms=%d", front, tc.ms))
		if err != nil {
			t.Fatalf("hold %d ms: %v", tc.ms, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("hold %d ms: %d %q, want %d", tc.ms, resp.StatusCode, b, tc.want)
		}
	}
	p.Signal(syscall.SIGTERM)
	p.Wait(15 * time.Second)
}

// Tunnels give their descriptors back as they close, and hold two each meanwhile (the client's
// and the worker's): io.Copy between TCP connections spliced through pooled pipes, 6 fds a
// WebSocket, 4 of them left open for minutes after it closed, and under RLIMIT_NOFILE 256, 60
// WebSockets left tender unable to answer a plain GET. Two rounds, so that what one leaves
// behind shows in the next.
func TestTunnelsGiveTheirDescriptorsBack(t *testing.T) {
	const tunnels = 60
	for _, protocol := range []string{"http", "tcp"} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ctl, addr := filepath.Join(dir, "control.sock"), "127.0.0.1:"+freePort(t)
			env := []string{"TENDER_CONTROL=" + ctl, "TENDER_LISTEN=" + addr, "TENDER_PROTOCOL=" + protocol, "TENDER_WORKERS=2"}
			run := startTenderFrom(t, "ulimit -n 256", AsPID1, env, "--", bin.testapp, "serve")
			f := &Front{Pool: &Pool{Run: run, Control: ctl, Dir: dir}, Addr: addr}
			f.waitFor("2 ready", 10*time.Second, nReady(2))
			tender := f.TenderPid()
			// The first tunnel starts the event loops, which keep their descriptors.
			c, err := openTunnel(f.Addr, protocol, 0)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			f.waitFor("no session in flight", 5*time.Second, func(st apps.Status) bool {
				return st.Workers[0].Sessions+st.Workers[1].Sessions == 0
			})
			base := len(openFds(t, tender))
			for round := range 2 {
				conns := make([]net.Conn, 0, tunnels)
				for i := range tunnels {
					c, err := openTunnel(f.Addr, protocol, i)
					if err != nil {
						t.Fatalf("round %d, tunnel %d: %v (tender holds %d fds, %d before)", round, i, err, len(openFds(t, tender)), base)
					}
					conns = append(conns, c)
				}
				if n := len(openFds(t, tender)); n > base+2*tunnels+4 {
					t.Errorf("round %d: %d fds with %d tunnels open, %d before: want 2 a tunnel", round, n, tunnels, base)
				}
				client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
				if code, _, err := f.get(client, "/"); code != 200 {
					t.Errorf("round %d: a GET beside %d tunnels: %d %v", round, tunnels, code, err)
				}
				for _, c := range conns {
					c.Close()
				}
				// The GET's worker connection stays idle for up to 2 s, then is closed too.
				deadline := time.Now().Add(5 * time.Second)
				for n := len(openFds(t, tender)); n > base; n = len(openFds(t, tender)) {
					if time.Now().After(deadline) {
						t.Fatalf("round %d: %d fds 5 s after the tunnels closed, %d before", round, n, base)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
}

// openTunnel opens a session that stays open, and checks that bytes go through it both ways:
// in http mode a WebSocket (the test app's line echo), in tcp mode a kept-alive connection.
func openTunnel(addr, protocol string, i int) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	if protocol == "tcp" {
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		return c, c.SetDeadline(time.Time{})
	}
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err == nil && resp.StatusCode != 101 {
		err = fmt.Errorf("upgrade answered %s", resp.Status)
	}
	if err == nil {
		fmt.Fprintf(c, "hello %d\n", i)
		var line string
		if line, err = br.ReadString('\n'); err == nil && line != fmt.Sprintf("echo hello %d\n", i) {
			err = fmt.Errorf("through the tunnel: %q", line)
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, c.SetDeadline(time.Time{})
}

// A body trickled far below TENDER_BODY_MIN_RATE (its default, 500 bytes a second), never
// silent for TENDER_CLIENT_TIMEOUT, is cut off with a 408 once it has fallen that far behind,
// and the worker's one session is free again for others.
func TestTrickledBodyIs408(t *testing.T) {
	t.Parallel()
	f := startFront(t, "http", []string{"TENDER_WORKERS=1", "TENDER_CONCURRENCY=1", "TENDER_CLIENT_TIMEOUT=1s"})
	f.waitFor("1 ready", 10*time.Second, nReady(1))
	// 5 bytes a second, for 10 s at most.
	c, start := trickle(t, f.Addr, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n", 50, 200*time.Millisecond,
		func(int) string { return "x" })
	_ = c.SetReadDeadline(time.Now().Add(8 * time.Second))
	b, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(b), "HTTP/1.1 408") {
		t.Errorf("a body trickled at 5 bytes a second got %q after %v, want 408", b, time.Since(start))
	}
	if code, _, err := f.get(&http.Client{Timeout: 5 * time.Second}, "/"); code != 200 {
		t.Errorf("a GET after the trickle: %d %v", code, err)
	}
	f.Signal(syscall.SIGTERM)
	f.Wait(15 * time.Second)
}

// A header name with '_' does not reach the worker, where a CGI or WSGI environment would read
// Transfer_Encoding as Transfer-Encoding; TENDER_UNDERSCORES_IN_HEADERS=true passes on the
// others.
func TestUnderscoredHeadersAreDropped(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("kept=", keep), func(t *testing.T) {
			t.Parallel()
			f := startFront(t, "http", []string{"TENDER_WORKERS=1", fmt.Sprint("TENDER_UNDERSCORES_IN_HEADERS=", keep)})
			f.waitFor("1 ready", 10*time.Second, nReady(1))
			c, err := net.Dial("tcp", f.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "GET /headers HTTP/1.1\r\nHost: t\r\nTransfer_Encoding: chunked\r\nContent_Length: 5\r\nX_Custom: 1\r\nConnection: close\r\n\r\n")
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(c)
			seen := strings.ToLower(string(b))
			if !strings.HasPrefix(seen, "http/1.1 200") || strings.Contains(seen, "transfer_encoding") || strings.Contains(seen, "content_length") {
				t.Errorf("the worker saw:\n%s", b)
			}
			if strings.Contains(seen, "x_custom: 1") != keep {
				t.Errorf("X_Custom passed on: %v, want %v; the worker saw:\n%s", !keep, keep, b)
			}
			f.Signal(syscall.SIGTERM)
			f.Wait(15 * time.Second)
		})
	}
}
