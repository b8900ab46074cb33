package main

import (
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tenderinit/tender/bench/internal/kit"
)

// measure runs a scenario's load on s, sampling the workers' sessions in flight for the spread
// where the scenario wants it, and the balancer's CPU time before and after.
func measure(s *running, sc scenario) result {
	stop := make(chan struct{})
	spreads := make(chan []int, 1)
	if sc.spread == 0 {
		spreads <- nil
	} else {
		go sampleSpread(s, sc, stop, spreads)
	}
	cpu0 := s.cpu()
	r := sc.load(s.addr, *duration)
	used := s.cpu() - cpu0
	close(stop)
	samples := <-spreads
	sort.Ints(samples)
	r.spreadMedian, r.spreadP95 = -1, -1 // never steady: short requests are rarely in flight
	if len(samples) > 0 {
		r.spreadMedian, r.spreadP95 = float64(samples[len(samples)/2]), float64(samples[len(samples)*95/100])
	}
	if total := (r.rps + r.blockRPS) * duration.Seconds(); total > 0 {
		r.cpuPerReq = float64(used.Microseconds()) / total
	}
	return r
}

// median is the median of each figure across runs, taken apart.
func median(rs []result) result {
	m := func(get func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return result{
		rps:          m(func(r result) float64 { return r.rps }),
		p50:          m(func(r result) float64 { return r.p50 }),
		p99:          m(func(r result) float64 { return r.p99 }),
		blockRPS:     m(func(r result) float64 { return r.blockRPS }),
		cpuPerReq:    m(func(r result) float64 { return r.cpuPerReq }),
		spreadMedian: m(func(r result) float64 { return r.spreadMedian }),
		spreadP95:    m(func(r result) float64 { return r.spreadP95 }),
		errors:       m(func(r result) float64 { return r.errors }),
	}
}

var (
	reRPS  = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reLat  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)`)
	reErrs = regexp.MustCompile(`(?:Non-2xx or 3xx responses|Socket errors: connect \d+, read \d+, write \d+, timeout)[: ]+(\d+)`)
)

// wrk runs wrk with conns connections on path for d, and reads its figures.
func wrk(addr, path string, conns int, d time.Duration, extra ...string) result {
	args := append([]string{"-t2", "-c" + strconv.Itoa(conns), "-d" + d.String(), "--latency"}, extra...)
	out, err := exec.Command("wrk", append(args, "http://"+addr+path)...).CombinedOutput()
	kit.Must(err)
	return parseWrk(out)
}

func parseWrk(out []byte) result {
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
		n, _ := strconv.ParseFloat(string(m[1]), 64)
		r.errors += n
	}
	return r
}

// mixed is the load of issue 18: 2 connections keep calling /block?ms=50, which blocks a Node.js
// worker's event loop 50 ms, while 16 connections call / (answered at once), whose req/s and
// latency are reported. Two wrk processes, one for each endpoint, so that the fast requests'
// latency is measured apart; the blocking one starts first and ends last. With reconnect,
// every fast request comes on a connection of its own (tcp mode then routes each).
func mixed(addr string, d time.Duration, reconnect bool) result {
	block := exec.Command("wrk", "-t1", "-c2", "-d"+(d+time.Second).String(), "http://"+addr+"/block?ms=50")
	var blockOut strings.Builder
	block.Stdout, block.Stderr = &blockOut, &blockOut
	kit.Must(block.Start())
	time.Sleep(300 * time.Millisecond)
	var extra []string
	if reconnect {
		extra = []string{"-H", "Connection: close"}
	}
	r := wrk(addr, "/", 16, d, extra...)
	kit.Must(block.Wait())
	b := parseWrk([]byte(blockOut.String()))
	r.blockRPS, r.errors = b.rps, r.errors+b.errors
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

// sampleSpread samples the workers' sessions in flight every 50 ms until stop, and sends the
// spreads (busiest minus idlest) it saw in the steady state.
func sampleSpread(s *running, sc scenario, stop <-chan struct{}, spreads chan<- []int) {
	var samples []int
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			spreads <- samples
			return
		case <-tick.C:
			lo, hi, total := 1<<30, -1, 0
			for _, p := range s.ports {
				n := inflight(p)
				lo, hi, total = min(lo, n), max(hi, n), total+n
			}
			// Only the steady state counts: with most sessions in flight, not while wrk
			// opens or closes its connections.
			if total >= sc.spread*9/10 {
				samples = append(samples, hi-lo)
			}
		}
	}
}
