package apps

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/reaper"
)

// portSpan is a range of ports, both ends included.
type portSpan struct{ lo, hi int }

func (s portSpan) size() int { return max(s.hi-s.lo+1, 0) }

// The range the kernel takes ports from for outgoing connections and binds to port 0, and
// Linux's default for it, taken when the file cannot be read.
const (
	ephemeralRangeFile = "/proc/sys/net/ipv4/ip_local_port_range"
	firstUnprivileged  = 1024
)

var defaultEphemeral = portSpan{32768, 60999}

// workerPortSpans are the ports a worker may be given: those the kernel never hands out by
// itself, outside its ephemeral range, and not below 1024 (which need privilege). A port a
// worker was told to bind that the kernel gave some outgoing connection or port-0 bind in
// between failed the worker's start once in about a hundred pool starts. Above the range
// comes first: below it lie the ports of well-known services (3306, 5432, 8080).
func workerPortSpans(ephemeral portSpan) []portSpan {
	var spans []portSpan
	if above := (portSpan{max(ephemeral.hi+1, firstUnprivileged), 65535}); above.size() > 0 {
		spans = append(spans, above)
	}
	if below := (portSpan{firstUnprivileged, ephemeral.lo - 1}); below.size() > 0 {
		spans = append(spans, below)
	}
	return spans
}

// parsePortRange reads ip_local_port_range: two numbers, "32768\t60999".
func parsePortRange(text string) (portSpan, error) {
	f := strings.Fields(text)
	if len(f) != 2 {
		return portSpan{}, fmt.Errorf("want two ports, got %q", text)
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return portSpan{}, fmt.Errorf("want two ports from 1 to 65535, low first, got %q", text)
	}
	return portSpan{lo, hi}, nil
}

// portPicker gives each worker a port: a random one of workerPortSpans, free when it is chosen
// and given to no other live worker of the pool. Where none is to be had, it falls back on a
// port the kernel picks (a bind to port 0), which an outgoing connection may take before the
// worker binds it: a worker whose port turns out taken is started again on another one.
type portPicker struct {
	spans []portSpan
	given map[int]bool // the ports of the pool's live workers
	log   hclog.Logger
	// fallbackSaid: the fallback is said once, not at every start.
	fallbackSaid bool
	ephemeral    portSpan
}

// portTries bounds the random picks before the fallback: with a few thousand ports outside the
// range, 32 busy picks in a row mean that nearly all of them are in use.
const portTries = 32

func newPortPicker(log hclog.Logger) *portPicker {
	eph := defaultEphemeral
	if b, err := os.ReadFile(ephemeralRangeFile); err != nil {
		log.Debug("cannot read the kernel's ephemeral port range; taking Linux's default", "file", ephemeralRangeFile, "error", err, "default", eph)
	} else if eph, err = parsePortRange(string(b)); err != nil {
		log.Debug("cannot parse the kernel's ephemeral port range; taking Linux's default", "file", ephemeralRangeFile, "error", err)
		eph = defaultEphemeral
	}
	return &portPicker{spans: workerPortSpans(eph), given: map[int]bool{}, log: log, ephemeral: eph}
}

// pick chooses a port for a worker and holds it until release.
func (pp *portPicker) pick() (int, error) {
	for _, span := range pp.spans {
		for i := 0; i < portTries; i++ {
			port := span.lo + rand.IntN(span.size())
			if !pp.given[port] && portFree(port) {
				pp.given[port] = true
				return port, nil
			}
		}
	}
	if !pp.fallbackSaid {
		pp.fallbackSaid = true
		why := "every port tried outside it is in use"
		if len(pp.spans) == 0 {
			why = "it leaves no port from 1024 up outside it"
		}
		pp.log.Warn("worker ports come from the kernel's ephemeral port range, where an outgoing connection may take one "+
			"before its worker binds it (such a worker is started again on another port); leave ports outside "+
			"net.ipv4.ip_local_port_range", "range", fmt.Sprintf("%d-%d", pp.ephemeral.lo, pp.ephemeral.hi), "why", why)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("no free port for a worker, even from the kernel: %w", err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	pp.given[port] = true
	return port, nil
}

func (pp *portPicker) release(port int) { delete(pp.given, port) }

// portFree reports whether port can be bound on every address, IPv4 and IPv6, without
// SO_REUSEADDR: the strictest bind a worker may make (":$PORT", a program that does not set
// SO_REUSEADDR), so that neither a listener elsewhere nor a connection in TIME_WAIT on it
// makes the worker's bind fail.
func portFree(port int) bool {
	err := bindAll(unix.AF_INET6, port)
	if err != nil && err != unix.EADDRINUSE { // no IPv6 here
		err = bindAll(unix.AF_INET, port)
	}
	return err == nil
}

// bindAll binds a TCP socket of family to port on every address, and closes it.
func bindAll(family, port int) error {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: port}
	if family == unix.AF_INET6 {
		// Both families at once, whatever net.ipv6.bindv6only says.
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
		sa = &unix.SockaddrInet6{Port: port}
	}
	return unix.Bind(fd, sa)
}

// portTaken reports whether something listens on port now: for a worker that is gone, with
// what it left ended, someone else. A worker that failed its start then most likely failed to
// bind its port, no fault of its own.
func portTaken(port int) bool {
	rows, err := tcpListeners(port)
	return err == nil && len(rows) > 0
}

// listensOn reports whether the listener on port belongs to pid or its descendants (a shell
// that runs the server as its child), read from /proc: a worker's port accepting connections
// proves nothing when someone else took that port before the worker could bind it. Where /proc
// cannot tell (its fds belong to another user and tender lacks CAP_SYS_PTRACE), it says yes.
func listensOn(pid, port int, descendants func(int) []int) bool {
	rows, err := tcpListeners(port)
	if err != nil || len(rows) == 0 {
		return true
	}
	sockets := map[string]bool{}
	for _, r := range rows {
		sockets["socket:["+r.inode+"]"] = true
	}
	owns := func(pid int) (bool, error) {
		dir := "/proc/" + strconv.Itoa(pid) + "/fd"
		entries, err := os.ReadDir(dir)
		if err != nil {
			return false, err
		}
		for _, e := range entries {
			if link, err := os.Readlink(dir + "/" + e.Name()); err == nil && sockets[link] {
				return true, nil
			}
		}
		return false, nil
	}
	// The worker itself, most often, before a read of all /proc for its descendants.
	if yes, err := owns(pid); yes || errors.Is(err, os.ErrPermission) {
		return true
	}
	for _, p := range descendants(pid) {
		if yes, err := owns(p); yes || errors.Is(err, os.ErrPermission) {
			return true
		}
	}
	return false
}

// descendantPids lists the pids below pid, from /proc.
func descendantPids(pid int) []int {
	procs, _ := reaper.Descendants(pid)
	return pids(procs)
}

// tcpListener is a listening socket of /proc/net/tcp or tcp6.
type tcpListener struct {
	queued int    // connections waiting to be accepted (rx_queue, for a listener)
	inode  string // its socket's inode, as in /proc/<pid>/fd's "socket:[N]"
}

// tcpListeners lists the listening sockets on port, of either family.
func tcpListeners(port int) ([]tcpListener, error) {
	var rows []tcpListener
	read := false
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		read = true
		for _, line := range strings.Split(string(b), "\n") {
			// sl local_address rem_address st tx_queue:rx_queue tr:when retrnsmt uid timeout inode
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" {
				continue
			}
			_, portHex, ok := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(portHex, 16, 16); !ok || err != nil || int(p) != port {
				continue
			}
			_, rx, _ := strings.Cut(f[4], ":")
			n, _ := strconv.ParseUint(rx, 16, 32)
			rows = append(rows, tcpListener{queued: int(n), inode: f[9]})
		}
	}
	if !read {
		return nil, errors.New("neither /proc/net/tcp nor /proc/net/tcp6 can be read")
	}
	return rows, nil
}
