// Command balancerbench puts the same four workers behind tender and its peers on this machine,
// in one run, drives each with wrk on loopback and prints a Markdown table (also written to
// bench/out/balancer.md): req/s, p50 and p99, their ratios to tender's, the balancer's own CPU
// time per request (a steadier figure than req/s on a shared machine), and for held requests
// the spread of sessions in flight across the workers (max - min), sampled from the workers
// themselves so that all are measured alike.
//
// Two kinds of workers:
//   - the demo app (Go), behind tender, HAProxy (balance leastconn) and nginx (least_conn):
//     small responses on keep-alive connections, and held requests (each worker holds a
//     request 100 ms: the seed scenario of long sessions);
//   - a Node.js app (worker.js), behind tender, HAProxy and PM2's cluster mode: small
//     responses, and the mixed load of issue 18, where 2 connections keep calling an endpoint
//     that blocks the event loop 50 ms while 16 call an instant one, whose req/s and latency are
//     reported.
//
// Each setup runs reps times, the setups taking turns, and each figure is the median of its
// runs. HAProxy, nginx, wrk and node are installed from Debian, PM2 with npm, when missing. Run
// it with `make bench-balancer`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tenderinit/tender/bench/internal/kit"
)

var (
	duration = flag.Duration("d", 5*time.Second, "length of one measurement")
	reps     = flag.Int("reps", 3, "measurements of each setup, interleaved; the median is reported")
	outDir   = flag.String("out", "bench/out", "where the table and the configurations go")
	only     = flag.String("only", "", "run only the scenarios whose name contains this")
)

const workers = 4

// scenario is one load on one kind of worker, in the protocols it is measured in, against the
// setups that run that kind.
type scenario struct {
	name   string
	kind   string // "demo" or "node"
	protos []string
	peers  map[string][]string // by protocol: the setups besides tender
	load   func(addr string, d time.Duration) result
	spread int // sessions at once, when the spread of held sessions is sampled; 0: not
}

type result struct {
	rps, p50, p99 float64 // req/s and ms, of the fast requests in a mixed load
	blockRPS      float64 // mixed load: the blocking requests served a second
	cpuPerReq     float64 // µs of the balancer's own CPU time per request (all of them)
	spreadMedian  float64 // of the samples taken with nearly all sessions in flight; -1: none
	spreadP95     float64
	errors        float64
}

func main() {
	flag.Parse()
	kit.Must(os.MkdirAll(*outDir, 0o755))
	kit.Name = "balancerbench"
	kit.Ensure(map[string]string{"haproxy": "haproxy", "nginx": "nginx", "wrk": "wrk", "node": "nodejs"})
	if _, err := os.Stat("/usr/lib/nginx/modules/ngx_stream_module.so"); err != nil {
		kit.Install("libnginx-mod-stream")
	}
	ensurePM2()
	dir, _ := filepath.Abs(*outDir)
	b := &bench{dir: dir, tender: filepath.Join(dir, "tender"), demo: filepath.Join(dir, "demo")}
	kit.Build(b.tender, "./init")
	kit.Build(b.demo, "./demo")
	b.node, _ = filepath.Abs("bench/balancerbench/worker.js")

	both := map[string][]string{"http": {"HAProxy", "nginx"}, "tcp": {"HAProxy", "nginx"}}
	nodePeers := map[string][]string{"http": {"HAProxy", "PM2"}, "tcp": {"HAProxy"}}
	scenarios := []scenario{
		{name: "small responses, keep-alive", kind: "demo", protos: []string{"http", "tcp"}, peers: both,
			load: func(addr string, d time.Duration) result { return wrk(addr, "/", 50, d) }},
		{name: "held requests (100 ms), 100 sessions", kind: "demo", protos: []string{"http", "tcp"}, peers: both,
			load: func(addr string, d time.Duration) result { return wrk(addr, "/hold?ms=100", 100, d) }, spread: 100},
		{name: "Node.js, small responses", kind: "node", protos: []string{"http", "tcp"}, peers: nodePeers,
			load: func(addr string, d time.Duration) result { return wrk(addr, "/", 50, d) }},
		{name: "Node.js mixed: 16 fast, 2 blocking 50 ms", kind: "node", protos: []string{"http", "tcp"}, peers: nodePeers,
			load: func(addr string, d time.Duration) result { return mixed(addr, d, false) }},
		{name: "Node.js mixed, a connection per fast request", kind: "node", protos: []string{"tcp"}, peers: nodePeers,
			load: func(addr string, d time.Duration) result { return mixed(addr, d, true) }},
	}

	var table bytes.Buffer
	fmt.Fprintf(&table, "| protocol | load | balancer | req/s | p50 | p99 | req/s ÷ tender's | p99 ÷ tender's | balancer CPU µs/req | sessions spread, max − min (median / p95) | errors |\n")
	fmt.Fprintf(&table, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	var verdicts []string
	for _, sc := range scenarios {
		if !strings.Contains(sc.name, *only) {
			continue
		}
		for _, proto := range sc.protos {
			names := append([]string{"tender"}, sc.peers[proto]...)
			runs := map[string][]result{}
			for rep := 0; rep < *reps; rep++ {
				for _, name := range names {
					s := b.start(name, sc.kind, proto)
					sc.load(s.addr, time.Second) // warm up
					runs[name] = append(runs[name], measure(s, sc))
					s.stop()
				}
			}
			var t result
			for i, name := range names {
				r := median(runs[name])
				if i == 0 {
					t = r
				}
				spread := "–"
				if r.spreadMedian >= 0 {
					spread = fmt.Sprintf("%.0f / %.0f", r.spreadMedian, r.spreadP95)
				}
				load := sc.name
				if r.blockRPS > 0 {
					load += fmt.Sprintf(" (blocking: %.0f req/s)", r.blockRPS)
				}
				fmt.Fprintf(&table, "| %s | %s | %s | %.0f | %.2f ms | %.2f ms | %.2f | %.2f | %.1f | %s | %.0f |\n",
					proto, load, name, r.rps, r.p50, r.p99, r.rps/t.rps, r.p99/t.p99, r.cpuPerReq, spread, r.errors)
				if name == "HAProxy" {
					verdicts = append(verdicts, verdict(proto, sc, t, r))
				}
			}
		}
	}
	fmt.Fprintf(&table, "\nTargets against HAProxy: %s.\n", strings.Join(verdicts, "; "))
	fmt.Fprintf(&table, "\nwrk -t2 on loopback, %v a measurement, medians of %d interleaved runs; 4 workers; %d CPUs, load average %s before the run; `make bench-balancer` on %s.\n",
		*duration, *reps, kit.CPUs(), loadAverage, time.Now().UTC().Format("2006-01-02"))
	os.Stdout.Write(table.Bytes())
	kit.Must(os.WriteFile(filepath.Join(*outDir, "balancer.md"), table.Bytes(), 0o644))
}

// loadAverage is the machine's load before the run: the figures mean little on a busy one.
var loadAverage = func() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}()

// verdict states the targets of issue 18 against HAProxy: on small responses, req/s at least
// 1.1 times HAProxy's at a p99 no worse; on the mixed load, the fast requests' p99 at most a
// quarter of HAProxy's at 0.9 times its req/s; on held requests, the old targets (req/s at
// 0.99 times HAProxy's (all serve what the hold allows), p99 within 1.25 times, a spread of 1
// at most).
func verdict(proto string, sc scenario, t, h result) string {
	ok := func(b bool) string {
		if b {
			return "met"
		}
		return "MISSED"
	}
	what := proto + " " + sc.name
	switch {
	case strings.Contains(sc.name, "mixed"):
		return fmt.Sprintf("%s: fast p99 %.2f× HAProxy's (want ≤ 0.25: %s), fast req/s %.2f× (want ≥ 0.9: %s)",
			what, t.p99/h.p99, ok(t.p99 <= 0.25*h.p99), t.rps/h.rps, ok(t.rps >= 0.9*h.rps))
	case sc.spread > 0:
		return fmt.Sprintf("%s: req/s %.2f× HAProxy's (want ≥ 0.99: %s), p99 %.2f× (want ≤ 1.25: %s), spread %.0f (want ≤ 1: %s)",
			what, t.rps/h.rps, ok(t.rps >= 0.99*h.rps), t.p99/h.p99, ok(t.p99 <= 1.25*h.p99), t.spreadMedian, ok(t.spreadMedian <= 1))
	default:
		return fmt.Sprintf("%s: req/s %.2f× HAProxy's (want ≥ 1.1: %s), p99 %.2f× (want ≤ 1.0: %s), CPU per request %.2f× HAProxy's",
			what, t.rps/h.rps, ok(t.rps >= 1.1*h.rps), t.p99/h.p99, ok(t.p99 <= h.p99), t.cpuPerReq/h.cpuPerReq)
	}
}
