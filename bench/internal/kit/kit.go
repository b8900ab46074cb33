// Package kit holds what tender's benchmark programs share: building static binaries,
// installing peers from Debian, and small helpers.
package kit

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tenderinit/tender/reaper"
)

// Name prefixes the errors Must prints.
var Name = "bench"

// Build builds pkg as a static, stripped binary at out, with any further go build flags.
func Build(out, pkg string, flags ...string) {
	args := append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", out}, flags...)
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stderr = os.Stderr
	Must(cmd.Run())
}

// Ensure installs the Debian package of each command (command -> package) that is missing.
func Ensure(cmds map[string]string) {
	var pkgs []string
	for cmd, pkg := range cmds {
		if _, err := exec.LookPath(cmd); err != nil {
			pkgs = append(pkgs, pkg)
		}
	}
	Install(pkgs...)
}

// Install installs Debian packages.
func Install(pkgs ...string) {
	if len(pkgs) == 0 {
		return
	}
	sort.Strings(pkgs)
	fmt.Fprintln(os.Stderr, "installing", pkgs)
	Run("apt-get", "update", "-qq")
	Run("apt-get", append([]string{"install", "-y", "-qq"}, pkgs...)...)
}

// Run runs a command with its output on stderr, and stops the benchmark if it fails.
func Run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	Must(cmd.Run())
}

// LookPath is exec.LookPath that stops the benchmark when the command is missing.
func LookPath(name string) string {
	p, err := exec.LookPath(name)
	Must(err)
	return p
}

// FreePort is a free loopback port.
func FreePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Must(err)
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// WaitAccept waits until addr accepts a connection.
func WaitAccept(addr string) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Microsecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	Must(fmt.Errorf("nothing accepts on %s", addr))
}

// CPUs is the number of CPUs of the machine.
func CPUs() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return bytes.Count(b, []byte("\nprocessor")) + 1
}

// StatusKiB is a field of /proc/<pid>/status in KiB (VmRSS, RssAnon), 0 when it has none.
func StatusKiB(pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	Must(err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

// Children are the pids of pid's children, from /proc (of whichever thread forked them).
func Children(pid int) []int {
	below, _ := reaper.Below(pid)
	var out []int
	for _, p := range below {
		if p.PPid == pid {
			out = append(out, p.Pid)
		}
	}
	return out
}

// Must stops the benchmark on an error.
func Must(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", Name, err)
		os.Exit(1)
	}
}
