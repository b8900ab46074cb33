package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tenderinit/tender/bench/internal/kit"
)

// bench holds the binaries and the worker app of a run.
type bench struct {
	dir, tender, demo string
	node              string // worker.js
}

// running is a balancer in front of four workers.
type running struct {
	addr  string
	ports []string // the workers'
	// cpu is the balancer's own CPU time so far (not its workers'), for its time per request.
	cpu  func() time.Duration
	stop func()
}

// workerCmd is the command of one worker of kind, listening on port ("" for $PORT).
func (b *bench) workerCmd(kind, port string) *exec.Cmd {
	if kind == "node" {
		if port == "" {
			return exec.Command("node", b.node)
		}
		return exec.Command("node", b.node, port)
	}
	cmd := exec.Command(b.demo)
	if port != "" {
		cmd.Env = append(os.Environ(), "PORT="+port)
	}
	return cmd
}

func (b *bench) start(name, kind, proto string) *running {
	switch name {
	case "tender":
		return b.startTender(kind, proto)
	case "HAProxy":
		return b.startHAProxy(kind, proto)
	case "nginx":
		return b.startNginx(kind, proto)
	case "PM2":
		return b.startPM2()
	}
	panic(name)
}

func (b *bench) startTender(kind, proto string) *running {
	addr := "127.0.0.1:" + kit.FreePort()
	w := b.workerCmd(kind, "")
	cmd := exec.Command(b.tender, append([]string{"--"}, w.Args...)...)
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
	return &running{addr: addr, ports: ports, cpu: cpuOf(cmd.Process.Pid),
		stop: func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }}
}

// childPorts reads the PORT of each of tender's workers from /proc.
func childPorts(pid int) []string {
	var ports []string
	for _, child := range kit.Children(pid) {
		env, _ := os.ReadFile("/proc/" + strconv.Itoa(child) + "/environ")
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "PORT="); ok {
				ports = append(ports, v)
			}
		}
	}
	return ports
}

// cpuOf reads the CPU time (user and system) of the processes pids returns, at each call.
func cpuOf(pids ...int) func() time.Duration {
	return func() time.Duration {
		var ticks int64
		for _, pid := range pids {
			stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			if err != nil {
				continue
			}
			f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
			utime, _ := strconv.ParseInt(f[11], 10, 64)
			stime, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += utime + stime
		}
		return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	}
}

// startWorkers runs four workers for HAProxy or nginx.
func (b *bench) startWorkers(kind string) ([]string, func()) {
	var ports []string
	var cmds []*exec.Cmd
	for i := 0; i < workers; i++ {
		p := kit.FreePort()
		cmd := b.workerCmd(kind, p)
		cmd.Env = append(cmd.Environ(), "TENDER_WORKER_ID="+strconv.Itoa(i))
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

func (b *bench) startHAProxy(kind, proto string) *running {
	ports, stopWorkers := b.startWorkers(kind)
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
	path := filepath.Join(b.dir, "haproxy-"+proto+".cfg")
	kit.Must(os.WriteFile(path, []byte(cfg), 0o644))
	cmd := exec.Command("haproxy", "-f", path, "-db")
	kit.Must(cmd.Start())
	kit.WaitAccept(addr)
	return &running{addr: addr, ports: ports, cpu: cpuOf(cmd.Process.Pid),
		stop: func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait(); stopWorkers() }}
}

func (b *bench) startNginx(kind, proto string) *running {
	ports, stopWorkers := b.startWorkers(kind)
	addr := "127.0.0.1:" + kit.FreePort()
	var servers strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&servers, "        server 127.0.0.1:%s;\n", p)
	}
	prefix := filepath.Join(b.dir, "nginx")
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
	path := filepath.Join(b.dir, "nginx-"+proto+".conf")
	kit.Must(os.WriteFile(path, []byte(cfg), 0o644))
	cmd := exec.Command("nginx", "-p", prefix, "-c", path, "-g", "daemon off;")
	kit.Must(cmd.Start())
	kit.WaitAccept(addr)
	pids := append([]int{cmd.Process.Pid}, kit.Children(cmd.Process.Pid)...)
	return &running{addr: addr, ports: ports, cpu: cpuOf(pids...),
		stop: func() { cmd.Process.Signal(syscall.SIGQUIT); cmd.Wait(); stopWorkers() }}
}

// ensurePM2 installs PM2 with npm when it is missing (Debian does not package it).
func ensurePM2() {
	if _, err := exec.LookPath("pm2"); err == nil {
		return
	}
	if _, err := exec.LookPath("npm"); err != nil {
		kit.Install("npm")
	}
	fmt.Fprintln(os.Stderr, "installing pm2 (npm install -g pm2)")
	kit.Run("npm", "install", "-g", "pm2")
}

// startPM2 runs four Node.js workers in PM2's cluster mode: its daemon forks them with Node's
// cluster module, whose primary accepts on the one port and hands each connection to the
// workers in turn (round robin); the requests then go from the client to the worker with no
// hop between. The daemon and its workers are PM2's own, in a PM2_HOME of this run's.
func (b *bench) startPM2() *running {
	port := kit.FreePort()
	home := filepath.Join(b.dir, "pm2")
	pm2 := func(args ...string) {
		cmd := exec.Command("pm2", args...)
		cmd.Env = append(os.Environ(), "PM2_HOME="+home, "PORT="+port)
		out, err := cmd.CombinedOutput()
		if err != nil {
			kit.Must(fmt.Errorf("pm2 %s: %v\n%s", strings.Join(args, " "), err, out))
		}
	}
	pm2("start", b.node, "-i", strconv.Itoa(workers), "--name", "bench")
	addr := "127.0.0.1:" + port
	kit.WaitAccept(addr)
	pidText, err := os.ReadFile(filepath.Join(home, "pm2.pid"))
	kit.Must(err)
	daemon, _ := strconv.Atoi(strings.TrimSpace(string(pidText)))
	var ports []string // the workers share the one port: no spread is sampled
	return &running{addr: addr, ports: ports, cpu: cpuOf(daemon), stop: func() { pm2("kill") }}
}
