package balancer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The histogram's text is what Prometheus reads: cumulative buckets up to +Inf, the sum in
// seconds and the count.
func TestHistogramInPrometheusText(t *testing.T) {
	var h histogram
	for _, d := range []time.Duration{0, time.Millisecond, 1001 * time.Microsecond, 7 * time.Millisecond, 2 * time.Second, time.Minute} {
		h.observe(d)
	}
	var buf bytes.Buffer
	h.writePrometheus(&buf, "x_seconds", "Test.", webType)
	text := buf.String()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(&buf)
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v\n%s", err, buf.String())
	}
	m := families["x_seconds"].GetMetric()[0]
	if got := m.GetLabel()[0]; got.GetName() != "type" || got.GetValue() != "web" {
		t.Errorf("label %v, want type=web", got)
	}
	hist := m.GetHistogram()
	want := map[float64]uint64{0.001: 2, 0.0025: 3, 0.005: 3, 0.01: 4, 1: 4, 2.5: 5, 30: 5}
	found := 0
	for _, b := range hist.GetBucket() {
		if n, ok := want[b.GetUpperBound()]; ok {
			found++
			if b.GetCumulativeCount() != n {
				t.Errorf("bucket le=%g holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), n)
			}
		}
	}
	if found != len(want) {
		t.Errorf("%d of the buckets %v found", found, want)
	}
	if hist.GetSampleCount() != 6 || hist.GetSampleSum() < 62.009 || hist.GetSampleSum() > 62.0091 {
		t.Errorf("count %d, sum %g; want 6 and 62.009001", hist.GetSampleCount(), hist.GetSampleSum())
	}
	if !strings.Contains(text, `x_seconds_bucket{type="web",le="+Inf"} 6`) {
		t.Errorf("no +Inf bucket with all six:\n%s", text)
	}
}

// The worker sees when the request's first byte came, in microseconds since the epoch; a time
// that a proxy before tender set is kept.
func TestXRequestStart(t *testing.T) {
	seen := make(chan string, 2)
	w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
		seen <- strings.Join(r.Header.Values("X-Request-Start"), "|")
		io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
		return true
	})
	b := startBalancer(t, Config{}, w)
	before := time.Now().UnixMicro()
	if got := statusOf(roundTrip(t, b, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")); got != "HTTP/1.1 204 No Content" {
		t.Fatalf("got %q", got)
	}
	after := time.Now().UnixMicro()
	v := <-seen
	us, err := strconv.ParseInt(strings.TrimPrefix(v, "t="), 10, 64)
	if !strings.HasPrefix(v, "t=") || err != nil || us < before || us > after {
		t.Errorf("X-Request-Start %q, want t= a time between %d and %d", v, before, after)
	}
	roundTrip(t, b, "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Start: t=1600000000000000\r\nConnection: close\r\n\r\n")
	if v := <-seen; v != "t=1600000000000000" {
		t.Errorf("a client's X-Request-Start reached the worker as %q", v)
	}
}

// syncLog is a log output that tests read while the balancer writes to it.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// lines returns the JSON lines logged so far, once there are n at least (or after 5 s).
func (l *syncLog) lines(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		raw := l.buf.String()
		l.mu.Unlock()
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(raw), "\n") {
			if line == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("a log line that is not JSON: %q", line)
			}
			out = append(out, m)
		}
		if len(out) >= n || time.Now().After(deadline) {
			return out
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func accessLogger(out io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "tender.access", Output: out, JSONFormat: true})
}

// One line per request: the worker's answers with their worker, tender's own with none; the
// histograms count them all, and the queue wait of those that asked for a worker.
func TestAccessLogAndHistogramsOfRequests(t *testing.T) {
	w := startRawWorker(t, func(r *http.Request, c net.Conn) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
		return true
	})
	var out syncLog
	b := startBalancer(t, Config{AccessLog: accessLogger(&out)}, w)
	c := dial(t, b)
	br := bufio.NewReader(c)
	for _, path := range []string{"/a?x=1", "/b"} {
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", path)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		io.Copy(io.Discard, resp.Body)
	}
	fmt.Fprintf(c, "GET /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n") // 501, from tender
	io.Copy(io.Discard, c)
	lines := out.lines(t, 3)
	if len(lines) != 3 {
		t.Fatalf("%d access log lines, want 3: %v", len(lines), lines)
	}
	for i, want := range []map[string]any{
		{"@message": "request", "@module": "tender.access", "method": "GET", "path": "/a?x=1", "status": 200.0, "worker": 0.0, "client": "127.0.0.1"},
		{"path": "/b", "status": 200.0, "worker": 0.0},
		{"path": "/c", "status": 501.0, "worker": nil},
	} {
		for k, v := range want {
			if lines[i][k] != v {
				t.Errorf("line %d: %s is %v, want %v: %v", i, k, lines[i][k], v, lines[i])
			}
		}
		if d, ok := lines[i]["duration_ms"].(float64); !ok || d < 0 {
			t.Errorf("line %d: duration_ms %v", i, lines[i]["duration_ms"])
		}
	}
	if n, _ := lines[0]["bytes"].(float64); int(n) < 5+len("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n") {
		t.Errorf("bytes %v: want the head and the body sent", n)
	}
	var buf bytes.Buffer
	b.WritePrometheus(&buf)
	for _, want := range []string{`tender_request_duration_seconds_count{type="web"} 3`, `tender_queue_wait_seconds_count{type="web"} 2`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics without %s:\n%s", want, buf.String())
		}
	}
}

// In tcp mode a line per connection: its worker, the bytes each way and how long it lasted.
func TestAccessLogOfConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 4)
				io.ReadFull(c, buf)
				c.Write([]byte("pong!"))
				c.Close()
			}()
		}
	}()
	var out syncLog
	b, err := Listen(Config{Network: "tcp", Addr: "127.0.0.1:0", QueueSize: 1, QueueTimeout: time.Second,
		ClientTimeout: time.Second, AccessLog: accessLogger(&out)}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	be := NewBackend(7, ln.Addr().String())
	be.SetRoutable(true)
	b.Add(be)
	go b.Serve()
	defer b.Close()
	c := dial(t, b)
	c.Write([]byte("ping"))
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "pong!" {
		t.Fatalf("got %q", got)
	}
	lines := out.lines(t, 1)
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1: %v", len(lines), lines)
	}
	for k, v := range map[string]any{"@message": "connection", "worker": 7.0, "bytes_in": 4.0, "bytes_out": 5.0} {
		if lines[0][k] != v {
			t.Errorf("%s is %v, want %v: %v", k, lines[0][k], v, lines[0])
		}
	}
	if !strings.HasPrefix(fmt.Sprint(lines[0]["client"]), "127.0.0.1:") {
		t.Errorf("client %v", lines[0]["client"])
	}
	var buf bytes.Buffer
	b.WritePrometheus(&buf)
	if !strings.Contains(buf.String(), `tender_connection_duration_seconds_count{type="web"} 1`) {
		t.Errorf("metrics:\n%s", buf.String())
	}
}
