package balancer

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The body's clock, read by read: how long the next read may wait after a history of reads,
// each a wait and the bytes it brought, at 100 bytes a second within a 10 s client timeout.
func TestBodyClock(t *testing.T) {
	type read struct {
		waited time.Duration
		n      int
	}
	s := time.Second
	for _, tc := range []struct {
		name  string
		rate  float64
		reads []read
		left  time.Duration
	}{
		{"a new body has the client timeout", 100, nil, 10 * s},
		{"keeping to the rate keeps the credit", 100, []read{{s, 100}, {2 * s, 200}}, 10 * s},
		{"a silence spends it", 100, []read{{4 * s, 0}}, 6 * s},
		{"a byte every 4 s spends it", 100, []read{{4 * s, 1}, {4 * s, 1}, {4 * s, 1}}, -2*s + 30*time.Millisecond},
		{"bytes earn it back", 100, []read{{8 * s, 0}, {s, 500}}, 6 * s},
		{"no more than the client timeout", 100, []read{{s, 1 << 20}}, 10 * s},
		{"a fast start buys no long trickle", 100, []read{{s, 1 << 20}, {6 * s, 1}, {6 * s, 1}}, -2*s + 20*time.Millisecond},
		{"off: always the client timeout", 0, []read{{4 * s, 1}, {4 * s, 1}, {4 * s, 1}}, 10 * s},
	} {
		c := bodyClock{rate: tc.rate, window: 10 * s}
		c.start()
		for _, r := range tc.reads {
			c.read(r.waited, r.n)
		}
		if got := c.left(); got != tc.left {
			t.Errorf("%s: %v left, want %v", tc.name, got, tc.left)
		}
	}
}

// A client that trickles its body, never silent for the client timeout but far below
// TENDER_BODY_MIN_RATE, gets 408 once it has fallen the client timeout behind, and its worker's
// session ends: with TENDER_CONCURRENCY=1, two such clients kept every other request in the
// queue, then 503, for as long as they liked. A body that keeps to the rate is whole.
func TestSlowBodyIsCutOff(t *testing.T) {
	const timeout = 500 * time.Millisecond
	w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	b := startBalancer(t, Config{ClientTimeout: timeout, BodyMinRate: 1000, Concurrency: 1}, w)
	b.router.queueTimeout = 20 * timeout

	trickle := func(c net.Conn, piece string, every time.Duration) {
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
		for range int(10 * time.Second / every) {
			if _, err := io.WriteString(c, piece); err != nil {
				return
			}
			time.Sleep(every)
		}
	}
	start := time.Now()
	var slow []net.Conn
	for range 2 {
		c := dial(t, b)
		go trickle(c, "x", timeout/5) // 5 bytes a second: 200 times too slow
		slow = append(slow, c)
	}
	// A request behind them in the queue gets its turn.
	get := dial(t, b)
	io.WriteString(get, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	_ = get.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, _ := io.ReadAll(get); statusOf(string(got)) != "HTTP/1.1 200 OK" {
		t.Errorf("a GET behind two trickling uploads got %q after %v", got, time.Since(start))
	}
	for i, c := range slow {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, _ := io.ReadAll(c)
		if statusOf(string(got)) != "HTTP/1.1 408 Request Timeout" || !strings.Contains(string(got), "slower than 1000 bytes a second") {
			t.Errorf("trickling client %d got %q after %v, want a 408", i, got, time.Since(start))
		}
	}

	// Four times the rate, in pieces a fifth of the timeout apart: whole.
	c := dial(t, b)
	go func() {
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4000\r\n\r\n")
		for range 5 {
			io.WriteString(c, strings.Repeat("x", 800))
			time.Sleep(timeout / 5)
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, _ := io.ReadAtLeast(c, buf, len("HTTP/1.1 200 OK"))
	if statusOf(string(buf[:n])) != "HTTP/1.1 200 OK" {
		t.Errorf("an upload at four times the rate: %q", buf[:n])
	}
}
