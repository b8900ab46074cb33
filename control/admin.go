package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/hashicorp/go-hclog"

	"github.com/tenderinit/tender/apps"
	"github.com/tenderinit/tender/config"
)

// Admin serves TENDER_ADMIN: /healthz (200 when at least one worker is ready), /metrics
// (Prometheus text format) and /status (the JSON of `tender status --json`).
//
// It answers one GET per connection with a few lines of HTTP/1.1 rather than with net/http:
// net/http and the crypto/tls it brings would add 3 MB to tender's binary and 0.4 ms to the start
// of every process tender starts (each runs tender's package initialisation).
type Admin struct {
	ln      net.Listener
	src     apps.StatusSource
	timings MetricsWriter // nil without a balancer
	log     hclog.Logger
}

// MetricsWriter writes metrics of its own in the Prometheus text format, HELP and TYPE
// included: the balancer's histograms.
type MetricsWriter interface {
	WritePrometheus(w io.Writer)
}

// ServeAdmin starts the admin endpoint on addr. timings may be nil.
func ServeAdmin(addr *config.Address, src apps.StatusSource, timings MetricsWriter, log hclog.Logger) (*Admin, error) {
	ln, err := net.Listen(addr.Network, addr.Addr)
	if err != nil {
		return nil, fmt.Errorf("TENDER_ADMIN=%s: %w", addr, err)
	}
	a := &Admin{ln: ln, src: src, timings: timings, log: log}
	go a.serve()
	log.Debug("admin endpoint ready", "address", ln.Addr().String())
	return a, nil
}

// Close stops the admin endpoint.
func (a *Admin) Close() { a.ln.Close() }

func (a *Admin) serve() {
	for {
		c, err := a.ln.Accept()
		if err != nil {
			return
		}
		go a.answer(c)
	}
}

func (a *Admin) answer(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	method, path, ok := readRequestLine(bufio.NewReaderSize(c, 4096))
	if !ok {
		reply(c, 400, "text/plain", []byte("bad request\n"), false)
		return
	}
	head := method == "HEAD"
	if method != "GET" && !head {
		reply(c, 405, "text/plain", []byte("only GET\n"), head)
		return
	}
	switch path {
	case "/healthz":
		code, body := healthz(a.src.Status())
		reply(c, code, "text/plain", []byte(body), head)
	case "/status":
		b, _ := json.MarshalIndent(a.src.Status(), "", "  ")
		reply(c, 200, "application/json", append(b, '\n'), head)
	case "/metrics":
		var own, buf bytes.Buffer
		statusMetrics(a.src.Status()).WritePrometheus(&own)
		writeWithTypes(&buf, own.Bytes())
		if a.timings != nil {
			a.timings.WritePrometheus(&buf)
		}
		metrics.WriteProcessMetrics(&buf)
		reply(c, 200, "text/plain; version=0.0.4", buf.Bytes(), head)
	default:
		reply(c, 404, "text/plain", []byte("not found: try /healthz, /metrics or /status\n"), head)
	}
}

// healthz is 200 while any worker is ready, 503 otherwise; its body names the workers in a
// crash loop, which do not make it fail while another serves.
func healthz(st apps.Status) (code int, body string) {
	ok, why := st.Health()
	code, body = 200, why+"\n"
	if !ok {
		code = 503
	}
	if ids := st.CrashLoops(); len(ids) > 0 {
		body += "in a crash loop: worker " + strings.Join(ids, ", ") + "\n"
	}
	return code, body
}

// readRequestLine reads a request head and returns its method and path (without the query).
func readRequestLine(br *bufio.Reader) (method, path string, ok bool) {
	first := ""
	for i := 0; ; i++ {
		line, err := br.ReadSlice('\n')
		if err != nil || i > 100 {
			return "", "", false
		}
		line = bytes.TrimRight(line, "\r\n")
		if i == 0 {
			first = string(line)
		}
		if len(line) == 0 {
			break
		}
	}
	var version string
	if n, _ := fmt.Sscanf(first, "%s %s %s", &method, &path, &version); n != 3 {
		return "", "", false
	}
	if q := bytes.IndexByte([]byte(path), '?'); q >= 0 {
		path = path[:q]
	}
	return method, path, true
}

func reply(c net.Conn, code int, contentType string, body []byte, headOnly bool) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %s\r\nConnection: close\r\n\r\n",
		code, statusText[code], contentType, strconv.Itoa(len(body)))
	if !headOnly {
		b.Write(body)
	}
	_, _ = c.Write(b.Bytes())
}

var statusText = map[int]string{200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}

// statusMetrics turns a status into metrics. A fresh set per scrape: workers come and go, and
// a gone worker's series must go with it.
func statusMetrics(st apps.Status) *metrics.Set {
	set := metrics.NewSet()
	byState := map[string]int{}
	for _, w := range st.Workers {
		byState[w.State]++
		if w.Pid == 0 {
			continue
		}
		labels := fmt.Sprintf(`{type=%q,id="%d",pid="%d",state=%q}`, w.Type, w.ID, w.Pid, w.State)
		gauge(set, "tender_worker_sessions"+labels, float64(w.Sessions))
		set.NewCounter("tender_worker_processed_total" + labels).Set(w.Processed)
		gauge(set, "tender_worker_uptime_seconds"+labels, w.UptimeSeconds)
		gauge(set, "tender_worker_rss_bytes"+labels, float64(w.RSSBytes))
		gauge(set, "tender_worker_oom_score_adj"+labels, float64(w.OOMScoreAdj))
	}
	// One series per slot: a slot's draining worker and its replacement share its count.
	restarts := map[string]int{}
	for _, w := range st.Workers {
		restarts[fmt.Sprintf(`{type=%q,id="%d"}`, w.Type, w.ID)] = w.Restarts
	}
	for labels, n := range restarts {
		set.NewCounter("tender_worker_restarts_total" + labels).Set(uint64(n))
	}
	for state, n := range byState {
		gauge(set, fmt.Sprintf(`tender_workers{state=%q}`, state), float64(n))
	}
	gauge(set, "tender_queue_length", float64(st.Queue))
	gauge(set, "tender_oom_score_adj", float64(st.Tender.OOMScoreAdj))
	return set
}

// families are tender's own metrics: their type and what they mean, for # TYPE and # HELP.
var families = map[string][2]string{
	"tender_worker_sessions":        {"gauge", "Sessions in flight on the worker."},
	"tender_worker_processed_total": {"counter", "Sessions the worker has finished."},
	"tender_worker_uptime_seconds":  {"gauge", "Seconds since the worker started."},
	"tender_worker_rss_bytes":       {"gauge", "The worker's resident set size."},
	"tender_worker_oom_score_adj":   {"gauge", "The worker's oom_score_adj."},
	"tender_worker_restarts_total":  {"counter", "Restarts of the worker's slot."},
	"tender_workers":                {"gauge", "Workers by state."},
	"tender_queue_length":           {"gauge", "Sessions waiting for a worker."},
	"tender_oom_score_adj":          {"gauge", "tender's own oom_score_adj."},
}

// writeWithTypes writes metrics, sorted by name as metrics.Set writes them, with # HELP and
// # TYPE before the first line of each of tender's families.
func writeWithTypes(w *bytes.Buffer, metricLines []byte) {
	last := ""
	for _, line := range bytes.SplitAfter(metricLines, []byte("\n")) {
		name := string(line[:max(bytes.IndexAny(line, "{ "), 0)])
		if f, ok := families[name]; ok && name != last {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, f[1], name, f[0])
			last = name
		}
		w.Write(line)
	}
}

func gauge(set *metrics.Set, name string, v float64) {
	set.NewGauge(name, func() float64 { return v })
}
