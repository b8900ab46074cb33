// Command poolbench measures tender's pool on this machine and prints a Markdown table (also
// written to bench/out/pool.md):
//
//   - the time from a worker's SIGKILL to its replacement being ready, for the demo app, with
//     the demo app's own start (exec to accepting, without tender) beside it;
//   - tender's own RSS with 4 and with 32 workers.
//
// Run it with `make bench`.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/tenderinit/tender/bench/internal/kit"

	"github.com/tenderinit/tender/apps"
	"github.com/tenderinit/tender/control"
)

var (
	kills  = flag.Int("kills", 20, "workers to kill for the replacement time")
	outDir = flag.String("out", "bench/out", "where the table goes")
)

func main() {
	flag.Parse()
	kit.Name = "poolbench"
	kit.Must(os.MkdirAll(*outDir, 0o755))
	tender, _ := filepath.Abs("bin/tender")
	demo, _ := filepath.Abs(filepath.Join(*outDir, "demo"))
	kit.Build(tender, "./init")
	kit.Build(demo, "./demo")

	own := demoStart(demo)
	repl := replacement(tender, demo)
	rss4, rss32 := tenderRSS(tender, demo, 4), tenderRSS(tender, demo, 32)

	var t bytes.Buffer
	fmt.Fprintf(&t, "| measure | median | p90 | target |\n|---|---|---|---|\n")
	fmt.Fprintf(&t, "| SIGKILL to replacement ready (demo app, %d kills) | %.1f ms | %.1f ms | 50 ms + the app's own start |\n",
		len(repl), median(repl), pct(repl, 90))
	fmt.Fprintf(&t, "| the demo app's own start, exec to accepting, without tender | %.1f ms | %.1f ms | |\n", median(own), pct(own, 90))
	fmt.Fprintf(&t, "| tender's RSS with 4 workers | %.1f MiB | | |\n", float64(rss4)/1024)
	fmt.Fprintf(&t, "| tender's RSS with 32 workers | %.1f MiB | | under 8 MiB |\n", float64(rss32)/1024)
	fmt.Fprintf(&t, "\nReplacement minus the app's own start: %.1f ms (median).\n", median(repl)-median(own))
	os.Stdout.Write(t.Bytes())
	kit.Must(os.WriteFile(filepath.Join(*outDir, "pool.md"), t.Bytes(), 0o644))
}

// demoStart times the demo app alone: from exec to its port accepting a connection.
func demoStart(demo string) []float64 {
	var out []float64
	for i := 0; i < *kills; i++ {
		port := kit.FreePort()
		cmd := exec.Command(demo)
		cmd.Env = append(os.Environ(), "PORT="+port)
		start := time.Now()
		kit.Must(cmd.Start())
		kit.WaitAccept("127.0.0.1:" + port)
		out = append(out, ms(time.Since(start)))
		cmd.Process.Kill()
		cmd.Wait()
	}
	return out
}

// replacement kills workers of a running pool one at a time and times, from tender's own log,
// how long each replacement takes to be ready. Workers have lived past TENDER_MIN_UPTIME, so
// each restart is immediate, as for a worker that crashed after serving a while.
func replacement(tender, demo string) []float64 {
	ctl := filepath.Join(os.TempDir(), fmt.Sprintf("poolbench-%d.sock", os.Getpid()))
	cmd := exec.Command(tender, "--", demo)
	cmd.Env = append(os.Environ(), "TENDER_WORKERS=4", "TENDER_MIN_UPTIME=500ms", "TENDER_LOG_FORMAT=json",
		"TENDER_CONTROL="+ctl, "TENDER_LISTEN=127.0.0.1:"+kit.FreePort())
	stderr, _ := cmd.StderrPipe()
	kit.Must(cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()

	ready := make(chan logLine, 64)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var l logLine
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Message == "worker ready" {
				ready <- l
			}
		}
	}()
	for i := 0; i < 4; i++ {
		<-ready
	}
	var out []float64
	for i := 0; i < *kills; i++ {
		time.Sleep(700 * time.Millisecond) // past TENDER_MIN_UPTIME
		resp, err := control.Call(ctl, control.Request{Cmd: "status"})
		kit.Must(err)
		victim := resp.Status.Workers[i%len(resp.Status.Workers)]
		t0 := time.Now()
		kit.Must(syscall.Kill(victim.Pid, syscall.SIGKILL))
		for l := range ready {
			if l.ID == victim.ID {
				out = append(out, ms(l.Time.Sub(t0)))
				break
			}
		}
	}
	os.Remove(ctl)
	return out
}

type logLine struct {
	Time    time.Time `json:"@timestamp"`
	Message string    `json:"@message"`
	ID      int       `json:"id"`
}

// tenderRSS is tender's own resident set, in KiB, with n demo workers ready and settled.
func tenderRSS(tender, demo string, n int) int {
	ctl := filepath.Join(os.TempDir(), fmt.Sprintf("poolbench-rss-%d.sock", os.Getpid()))
	cmd := exec.Command(tender, "--", demo)
	cmd.Env = append(os.Environ(), "TENDER_WORKERS="+strconv.Itoa(n), "TENDER_CONTROL="+ctl,
		"TENDER_LISTEN=127.0.0.1:"+kit.FreePort(), "TENDER_LOG_LEVEL=warn")
	kit.Must(cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait(); os.Remove(ctl) }()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := control.Call(ctl, control.Request{Cmd: "status"})
		if err == nil && len(resp.Status.Workers) == n && allReady(resp.Status.Workers) {
			break
		}
	}
	time.Sleep(2 * time.Second) // let start-up garbage be collected
	return kit.StatusKiB(cmd.Process.Pid, "VmRSS")
}

func allReady(ws []apps.WorkerStatus) bool {
	for _, w := range ws {
		if w.State != string(apps.Ready) {
			return false
		}
	}
	return true
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(xs []float64) float64 { return pct(xs, 50) }

func pct(xs []float64, p int) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[min(len(s)-1, len(s)*p/100)]
}
