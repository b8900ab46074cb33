// Command procfilebench measures what a supervisor of several programs costs in memory: the
// resident set of tender running a Procfile of 3 types × 4 processes (the demo app as web,
// sleep as worker and clock), beside supervisord (Debian's supervisor, installed when missing)
// running the same 12 programs. It prints a Markdown table, also written to
// bench/out/procfile.md. Run it with `make bench`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/tenderinit/tender/apps"
	"github.com/tenderinit/tender/bench/internal/kit"
	"github.com/tenderinit/tender/control"
)

var outDir = flag.String("out", "bench/out", "where the table goes")

// perType is the processes of each of the 3 types.
const perType = 4

func main() {
	flag.Parse()
	kit.Name = "procfilebench"
	kit.Must(os.MkdirAll(*outDir, 0o755))
	kit.Ensure(map[string]string{"supervisord": "supervisor"})
	tender, _ := filepath.Abs("bin/tender")
	demo, _ := filepath.Abs(filepath.Join(*outDir, "demo"))
	kit.Build(tender, "./init")
	kit.Build(demo, "./demo")
	sleep := kit.LookPath("sleep")
	dir, err := os.MkdirTemp("", "procfilebench-")
	kit.Must(err)
	defer os.RemoveAll(dir)

	tenderKiB := tenderRSS(tender, demo, sleep, dir)
	supervisordKiB := supervisordRSS(demo, sleep, dir)

	var t bytes.Buffer
	fmt.Fprintf(&t, "| supervisor | its own RSS, 3 types × %d processes (the demo app, sleep, sleep) |\n|---|---|\n", perType)
	fmt.Fprintf(&t, "| tender (TENDER_PROCFILE) | %.1f MiB |\n", float64(tenderKiB)/1024)
	fmt.Fprintf(&t, "| supervisord %s (Python) | %.1f MiB |\n", supervisordVersion(), float64(supervisordKiB)/1024)
	os.Stdout.Write(t.Bytes())
	kit.Must(os.WriteFile(filepath.Join(*outDir, "procfile.md"), t.Bytes(), 0o644))
}

// tenderRSS is tender's own resident set, in KiB, once its 12 processes are up and settled.
func tenderRSS(tender, demo, sleep, dir string) int {
	procfile := filepath.Join(dir, "Procfile")
	kit.Must(os.WriteFile(procfile, []byte(fmt.Sprintf("web: %s\nworker: %s 100000\nclock: %s 100000\n", demo, sleep, sleep)), 0o644))
	ctl := filepath.Join(dir, "control.sock")
	cmd := exec.Command(tender, "--procfile", procfile)
	cmd.Env = append(os.Environ(), "TENDER_FORMATION=all="+strconv.Itoa(perType), "TENDER_CONTROL="+ctl,
		"TENDER_LISTEN=127.0.0.1:"+kit.FreePort(), "TENDER_MIN_UPTIME=1s", "TENDER_LOG_LEVEL=warn")
	kit.Must(cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := control.Call(ctl, control.Request{Cmd: "status"})
		if err == nil && allUp(resp.Status.Workers) == 3*perType {
			break
		}
		if time.Now().After(deadline) {
			kit.Must(fmt.Errorf("tender's %d processes are not all up after 30s", 3*perType))
		}
	}
	time.Sleep(2 * time.Second) // let start-up garbage be collected
	return kit.StatusKiB(cmd.Process.Pid, "VmRSS")
}

// allUp counts the workers ready (web) or running (the others).
func allUp(ws []apps.WorkerStatus) int {
	n := 0
	for _, w := range ws {
		if w.State == string(apps.Ready) || w.State == apps.Running {
			n++
		}
	}
	return n
}

// supervisordRSS is supervisord's own resident set (its Python process), in KiB, once its 12
// programs have been RUNNING past startsecs (1s) and the web ones accept.
func supervisordRSS(demo, sleep, dir string) int {
	base := freePorts(perType)
	conf := filepath.Join(dir, "supervisord.conf")
	kit.Must(os.WriteFile(conf, []byte(fmt.Sprintf(`[supervisord]
nodaemon=true
logfile=%[1]s/supervisord.log
pidfile=%[1]s/supervisord.pid
childlogdir=%[1]s

[program:web]
command=%[2]s
process_name=%%(program_name)s_%%(process_num)d
numprocs=%[4]d
numprocs_start=%[5]d
environment=PORT="%%(process_num)d"

[program:worker]
command=%[3]s 100000
process_name=%%(program_name)s_%%(process_num)d
numprocs=%[4]d

[program:clock]
command=%[3]s 100000
process_name=%%(program_name)s_%%(process_num)d
numprocs=%[4]d
`, dir, demo, sleep, perType, base)), 0o644))
	cmd := exec.Command(kit.LookPath("supervisord"), "-c", conf)
	kit.Must(cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	for i := 0; i < perType; i++ {
		kit.WaitAccept("127.0.0.1:" + strconv.Itoa(base+i))
	}
	for deadline := time.Now().Add(30 * time.Second); len(kit.Children(cmd.Process.Pid)) < 3*perType; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			kit.Must(fmt.Errorf("supervisord has not started its %d programs after 30s", 3*perType))
		}
	}
	time.Sleep(3 * time.Second) // past startsecs, and start-up settled
	return kit.StatusKiB(cmd.Process.Pid, "VmRSS")
}

// freePorts finds n free loopback ports in a row, for supervisord's process_num.
func freePorts(n int) int {
	for base := 62000; base < 65000; base += n {
		free := true
		for i := 0; i < n && free; i++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if free = err == nil; free {
				l.Close()
			}
		}
		if free {
			return base
		}
	}
	kit.Must(fmt.Errorf("no %d free ports in a row from 62000", n))
	return 0
}

func supervisordVersion() string {
	out, err := exec.Command("supervisord", "--version").Output()
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(out))
}
