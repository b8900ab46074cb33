// Command balancerbench puts the same four workers (the demo app) behind tender, HAProxy
// (balance leastconn) and nginx (least_conn) on this machine, in one run, drives each with wrk
// on loopback and prints a Markdown table (also written to bench/out/balancer.md): req/s, p50
// and p99, their ratios to tender's, and the spread of sessions in flight across the workers
// (max - min), sampled from the workers themselves so that all three are measured alike.
//
// Two scenarios in both protocols: small responses on keep-alive connections, and held
// requests (each worker holds a request 100 ms, the seed scenario of long sessions). HAProxy,
// nginx and wrk are installed from Debian when missing. Run it with `make bench-balancer`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tenderinit/tender/bench/internal/kit"
)

var (
	duration = flag.Duration("d", 5*time.Second, "length of one measurement")
	reps     = flag.Int("reps", 3, "measurements of each setup, interleaved; the median is reported")
	outDir   = flag.String("out", "bench/out", "where the table and the configurations go")
)

const workers = 4

// scenario is one load: the path asked for and the number of connections.
type scenario struct {
	name  string
	path  string
	conns int
}

var scenarios = []scenario{
	{"small responses, keep-alive", "/", 50},
	{"held requests (100 ms), 100 sessions", "/hold?ms=100", 100},
}

// setup is a balancer in front of four workers.
type setup struct {
	name  string
	start func(proto string) (addr string, workerPorts []string, stop func())
}

type result struct {
	rps, p50, p99 float64 // req/s, ms
	spreadMedian  float64 // of the samples taken with nearly all sessions in flight
	spreadP95     int
	errors        int
}

func main() {
	flag.Parse()
	kit.Must(os.MkdirAll(*outDir, 0o755))
	kit.Name = "balancerbench"
	kit.Ensure(map[string]string{"haproxy": "haproxy", "nginx": "nginx", "wrk": "wrk"})
	if _, err := os.Stat("/usr/lib/nginx/modules/ngx_stream_module.so"); err != nil {
		kit.Install("libnginx-mod-stream")
	}
	dir, _ := filepath.Abs(*outDir)
	tender := filepath.Join(dir, "tender")
	demo := filepath.Join(dir, "demo")
	kit.Build(tender, "./init")
	kit.Build(demo, "./demo")

	setups := []setup{
		{"tender", func(proto string) (string, []string, func()) { return startTender(tender, demo, proto) }},
		{"HAProxy", func(proto string) (string, []string, func()) { return startHAProxy(dir, demo, proto) }},
		{"nginx", func(proto string) (string, []string, func()) { return startNginx(dir, demo, proto) }},
	}
	var table bytes.Buffer
	fmt.Fprintf(&table, "| protocol | load | balancer | req/s | p50 | p99 | req/s ÷ tender's | p99 ÷ tender's | sessions spread, max − min (median / p95) | errors |\n")
	fmt.Fprintf(&table, "|---|---|---|---|---|---|---|---|---|---|\n")
	var verdicts []string
	for _, proto := range []string{"http", "tcp"} {
		for _, sc := range scenarios {
			runs := map[string][]result{}
			for rep := 0; rep < *reps; rep++ {
				for _, s := range setups {
					addr, ports, stop := s.start(proto)
					wrk(addr, sc, time.Second) // warm up
					runs[s.name] = append(runs[s.name], measure(addr, ports, sc))
					stop()
				}
			}
			var t result
			for i, s := range setups {
				r := medianRun(runs[s.name])
				if i == 0 {
					t = r
				}
				spread := "–"
				if r.spreadMedian >= 0 {
					spread = fmt.Sprintf("%.0f / %d", r.spreadMedian, r.spreadP95)
				}
				fmt.Fprintf(&table, "| %s | %s | %s | %.0f | %.2f ms | %.2f ms | %.2f | %.2f | %s | %d |\n",
					proto, sc.name, s.name, r.rps, r.p50, r.p99, r.rps/t.rps, r.p99/t.p99, spread, r.errors)
				if s.name == "HAProxy" {
					verdicts = append(verdicts, verdict(proto, sc, t, r))
				}
			}
		}
	}
	fmt.Fprintf(&table, "\nTargets against HAProxy: %s.\n", strings.Join(verdicts, "; "))
	fmt.Fprintf(&table, "\nwrk -t2 on loopback, %v a measurement, median of %d interleaved runs; 4 demo workers; %d CPUs; `make bench-balancer` on %s.\n",
		*duration, *reps, kit.CPUs(), time.Now().UTC().Format("2006-01-02"))
	os.Stdout.Write(table.Bytes())
	kit.Must(os.WriteFile(filepath.Join(*outDir, "balancer.md"), table.Bytes(), 0o644))
}

// verdict states the targets: tcp req/s at least HAProxy's; http at least 0.8 times, p99 no
// worse than 1.25 times; spread at most 1.
func verdict(proto string, sc scenario, t, h result) string {
	ok := func(b bool) string {
		if b {
			return "met"
		}
		return "MISSED"
	}
	need := 1.0
	if proto == "http" {
		need = 0.8
	}
	v := fmt.Sprintf("%s %s: req/s %.2f× HAProxy's (want ≥ %.1f: %s), p99 %.2f× (want ≤ 1.25: %s)",
		proto, strings.SplitN(sc.name, ",", 2)[0], t.rps/h.rps, need, ok(t.rps >= need*h.rps),
		t.p99/h.p99, ok(t.p99 <= 1.25*h.p99))
	if t.spreadMedian >= 0 {
		v += fmt.Sprintf(", spread %.0f (want ≤ 1: %s)", t.spreadMedian, ok(t.spreadMedian <= 1))
	}
	return v
}

func medianRun(rs []result) result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].rps < rs[j].rps })
	return rs[len(rs)/2]
}

// measure runs wrk while sampling the workers' sessions in flight.
func measure(addr string, ports []string, sc scenario) result {
	stop := make(chan struct{})
	spreads := make(chan []int)
	go func() {
		var s []int
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				spreads <- s
				return
			case <-tick.C:
				lo, hi, total := 1<<30, -1, 0
				for _, p := range ports {
					n := inflight(p)
					lo, hi, total = min(lo, n), max(hi, n), total+n
				}
				// Only the steady state counts: with most sessions in flight, not while
				// wrk opens or closes its connections.
				if total >= sc.conns*9/10 {
					s = append(s, hi-lo)
				}
			}
		}
	}()
	r := wrk(addr, sc, *duration)
	close(stop)
	s := <-spreads
	sort.Ints(s)
	if len(s) > 0 {
		r.spreadMedian, r.spreadP95 = float64(s[len(s)/2]), s[len(s)*95/100]
	} else {
		r.spreadMedian, r.spreadP95 = -1, -1 // never steady: short requests are rarely in flight
	}
	return r
}

var (
	reRPS  = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reLat  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)`)
	reErrs = regexp.MustCompile(`(?:Non-2xx or 3xx responses|Socket errors: connect \d+, read \d+, write \d+, timeout)[: ]+(\d+)`)
)

func wrk(addr string, sc scenario, d time.Duration) result {
	out, err := exec.Command("wrk", "-t2", "-c"+strconv.Itoa(sc.conns), "-d"+d.String(), "--latency", "http://"+addr+sc.path).CombinedOutput()
	kit.Must(err)
	var r result
	if m := reRPS.FindSubmatch(out); m != nil {
		r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	for _, m := range reLat.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		switch string(m[3]) {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if string(m[1]) == "50" {
			r.p50 = v
		} else {
			r.p99 = v
		}
	}
	for _, m := range reErrs.FindAllSubmatch(out, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		r.errors += n
	}
	return r
}

// inflight asks a demo worker how many requests it holds.
func inflight(port string) int {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://127.0.0.1:" + port + "/stats")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func startTender(tender, demo, proto string) (string, []string, func()) {
	addr := "127.0.0.1:" + kit.FreePort()
	cmd := exec.Command(tender, "--", demo)
	cmd.Env = append(os.Environ(), "TENDER_WORKERS="+strconv.Itoa(workers), "TENDER_LISTEN="+addr,
		"TENDER_PROTOCOL="+proto, "TENDER_LOG_LEVEL=warn", "TENDER_CONTROL=off", "TENDER_QUEUE_SIZE=1000")
	kit.Must(cmd.Start())
	kit.WaitAccept(addr)
	var ports []string
	for deadline := time.Now().Add(10 * time.Second); len(ports) < workers && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ports = childPorts(cmd.Process.Pid)
	}
	for _, p := range ports {
		kit.WaitAccept("127.0.0.1:" + p)
	}
	return addr, ports, func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
}

// childPorts reads the PORT of each of tender's workers from /proc.
func childPorts(pid int) []string {
	var ports []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "PORT="); ok {
				ports = append(ports, v)
			}
		}
	}
	return ports
}

// startWorkers runs four demo workers for HAProxy or nginx.
func startWorkers(demo string) ([]string, func()) {
	var ports []string
	var cmds []*exec.Cmd
	for i := 0; i < workers; i++ {
		p := kit.FreePort()
		cmd := exec.Command(demo)
		cmd.Env = append(os.Environ(), "PORT="+p, "TENDER_WORKER_ID="+strconv.Itoa(i))
		kit.Must(cmd.Start())
		kit.WaitAccept("127.0.0.1:" + p)
		ports, cmds = append(ports, p), append(cmds, cmd)
	}
	return ports, func() {
		for _, c := range cmds {
			c.Process.Signal(syscall.SIGTERM)
			c.Wait()
		}
	}
}

func startHAProxy(dir, demo, proto string) (string, []string, func()) {
	ports, stopWorkers := startWorkers(demo)
	addr := "127.0.0.1:" + kit.FreePort()
	var servers strings.Builder
	for i, p := range ports {
		fmt.Fprintf(&servers, "    server w%d 127.0.0.1:%s\n", i, p)
	}
	mode := "    mode http\n    option http-keep-alive\n    http-reuse always\n"
	if proto == "tcp" {
		mode = "    mode tcp\n"
	}
	cfg := fmt.Sprintf(`global
    maxconn 4000
    nbthread %d
defaults
%s    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend front
    bind %s
    default_backend workers
backend workers
    balance leastconn
%s`, kit.CPUs(), mode, addr, servers.String())
	path := filepath.Join(dir, "haproxy-"+proto+".cfg")
	kit.Must(os.WriteFile(path, []byte(cfg), 0o644))
	cmd := exec.Command("haproxy", "-f", path, "-db")
	kit.Must(cmd.Start())
	kit.WaitAccept(addr)
	return addr, ports, func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait(); stopWorkers() }
}

func startNginx(dir, demo, proto string) (string, []string, func()) {
	ports, stopWorkers := startWorkers(demo)
	addr := "127.0.0.1:" + kit.FreePort()
	var servers strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&servers, "        server 127.0.0.1:%s;\n", p)
	}
	prefix := filepath.Join(dir, "nginx")
	kit.Must(os.MkdirAll(filepath.Join(prefix, "logs"), 0o755))
	var body string
	if proto == "http" {
		body = fmt.Sprintf(`http {
    access_log off;
    upstream workers {
        least_conn;
%s        keepalive 256;
    }
    server {
        listen %s;
        location / {
            proxy_pass http://workers;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}`, servers.String(), addr)
	} else {
		body = fmt.Sprintf(`stream {
    upstream workers {
        least_conn;
%s    }
    server {
        listen %s;
        proxy_pass workers;
    }
}`, servers.String(), addr)
	}
	cfg := fmt.Sprintf(`load_module /usr/lib/nginx/modules/ngx_stream_module.so;
user root;
worker_processes %d;
pid %s/nginx.pid;
error_log %s/logs/error.log warn;
events { worker_connections 4096; }
%s
`, kit.CPUs(), prefix, prefix, body)
	path := filepath.Join(dir, "nginx-"+proto+".conf")
	kit.Must(os.WriteFile(path, []byte(cfg), 0o644))
	cmd := exec.Command("nginx", "-p", prefix, "-c", path, "-g", "daemon off;")
	kit.Must(cmd.Start())
	kit.WaitAccept(addr)
	return addr, ports, func() { cmd.Process.Signal(syscall.SIGQUIT); cmd.Wait(); stopWorkers() }
}
