package e2e

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenderinit/tender/apps"
)

// dockerTimeout bounds every docker command: a wedged daemon fails the test instead of hanging
// it until go test's own timeout.
const dockerTimeout = 60 * time.Second

// busyboxPath is Debian's busybox-static: the image's /bin/sh and /bin/sleep, as the image
// has no distribution to bring a shell.
const busyboxPath = "/bin/busybox"

var dockerSeq atomic.Int64

// dockerCmd runs the docker client and returns its standard output; the error carries its
// standard error. DOCKER_BUILDKIT=0 keeps `docker build` on the classic builder, which every
// client and dockerd 20.10 have and which never pulls anything for a FROM scratch.
func dockerCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(cleanEnv(), "DOCKER_BUILDKIT=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer within %v", dockerTimeout)
		}
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// mustDocker is dockerCmd that fails the test on an error.
func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := dockerCmd(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// needDocker fails the test when no Docker engine answers: the suite is part of CI, where
// .ci/run starts one, and a missing engine must show as a failure, not as a skip. (Without root
// it is skipped, as every test that reads other users' processes is: CI runs as root.)
func needDocker(t *testing.T) {
	t.Helper()
	needRoot(t) // the tests read the containers' processes and cgroups through the host's /proc and /sys
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("no docker client: .ci/run installs docker.io and starts dockerd")
	}
	v, err := dockerCmd("version", "--format", "{{.Server.Version}}")
	if err != nil {
		t.Fatalf("no Docker engine answers (.ci/run installs docker.io and starts dockerd): %v", err)
	}
	t.Logf("Docker engine %s", strings.TrimSpace(v))
}

// buildImage builds a FROM scratch image from the static binaries that TestMain built:
// tender as ENTRYPOINT, testapp, busybox as /bin/sh and /bin/sleep, an /etc/passwd with a
// user 1000, and a /tmp for every user. extra lines end the Dockerfile. The image is removed
// when the test and its subtests are done.
func buildImage(t *testing.T, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"usr/local/bin", "bin", "etc", "tmp"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	must(t, os.Chmod(filepath.Join(root, "tmp"), 0o1777)) // COPY keeps the mode
	copyFile(t, bin.tender, filepath.Join(root, "usr/local/bin/tender"))
	copyFile(t, bin.testapp, filepath.Join(root, "usr/local/bin/testapp"))
	busybox := staticBusybox(t)
	for _, applet := range []string{"sh", "sleep"} {
		copyFile(t, busybox, filepath.Join(root, "bin", applet)) // busybox runs the applet its name says
	}
	must(t, os.WriteFile(filepath.Join(root, "etc/passwd"),
		[]byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/tmp:/bin/sh\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\napp:x:1000:\n"), 0o644))
	dockerfile := "FROM scratch\nCOPY rootfs /\nENTRYPOINT [\"/usr/local/bin/tender\", \"--\"]\n" + strings.Join(extra, "\n") + "\n"
	must(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644))

	name := fmt.Sprintf("tender-e2e:%d-%d", os.Getpid(), dockerSeq.Add(1))
	mustDocker(t, "build", "--quiet", "--tag", name, dir)
	t.Cleanup(func() {
		if _, err := dockerCmd("rmi", "--force", name); err != nil {
			t.Logf("removing image %s: %v", name, err)
		}
	})
	return name
}

// staticBusybox is the path of a busybox that runs in an empty image: statically linked, so
// with no program interpreter (ld.so) to find there.
func staticBusybox(t *testing.T) string {
	t.Helper()
	f, err := elf.Open(busyboxPath)
	if err != nil {
		t.Fatalf("%s: %v (.ci/run installs busybox-static)", busyboxPath, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked: it cannot run in a FROM scratch image (apt-get install busybox-static)", busyboxPath)
		}
	}
	return busyboxPath
}

// Container is a container of the suite, run detached, with a host directory at /out.
type Container struct {
	t    *testing.T
	Name string
	Out  string
	pid  int // the host's pid of its first process, once asked
}

// runContainer starts a container of image with the docker run options opts and the command
// args (tender's arguments after its "--"). It is removed when the test ends, and its log is
// shown when the test failed.
func runContainer(t *testing.T, image string, opts []string, args ...string) *Container {
	t.Helper()
	c := &Container{t: t, Name: fmt.Sprintf("tender-e2e-%d-%d", os.Getpid(), dockerSeq.Add(1)), Out: t.TempDir()}
	must(t, os.Chmod(c.Out, 0o777)) // the container's user may not be root
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of container %s:\n%s", c.Name, c.Logs())
		}
		if _, err := dockerCmd("rm", "--force", "--volumes", c.Name); err != nil {
			t.Logf("removing container %s: %v", c.Name, err)
		}
	})
	argv := append([]string{"run", "--detach", "--name", c.Name, "--label", "tender-e2e", "--volume", c.Out + ":/out"}, opts...)
	argv = append(append(argv, image), args...)
	mustDocker(t, argv...)
	return c
}

// runFront starts a pool of n workers of `testapp serve serveArgs...` behind TENDER_LISTEN=:8080,
// published on a free port of 127.0.0.1 (see Addr), and waits for every worker to be ready.
func runFront(t *testing.T, image string, n int, opts []string, serveArgs ...string) (*Container, apps.Status) {
	t.Helper()
	opts = append([]string{"--publish", "127.0.0.1::8080", "--env", "TENDER_LISTEN=:8080", "--env", fmt.Sprintf("TENDER_WORKERS=%d", n)}, opts...)
	c := runContainer(t, image, opts, append([]string{"testapp", "serve"}, serveArgs...)...)
	return c, c.waitStatus(fmt.Sprintf("%d ready workers", n), 30*time.Second, nReady(n))
}

// inspect returns a field of `docker inspect`, a Go template such as {{.State.Pid}}.
func (c *Container) inspect(format string) string {
	c.t.Helper()
	return strings.TrimSpace(mustDocker(c.t, "inspect", "--format", format, c.Name))
}

// Pid is the host's pid of the container's first process: tender, or docker-init with --init.
// It is asked once: the first process is the container's for as long as it runs.
func (c *Container) Pid() int {
	c.t.Helper()
	if c.pid != 0 {
		return c.pid
	}
	pid, err := strconv.Atoi(c.inspect("{{.State.Pid}}"))
	if err != nil || pid <= 0 {
		c.t.Fatalf("container %s has no running process (pid %d, %v)", c.Name, pid, err)
	}
	c.pid = pid
	return pid
}

// Wait waits for the container to exit and returns its exit code.
func (c *Container) Wait(timeout time.Duration) int {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "wait", c.Name).Output()
	if err != nil {
		c.t.Fatalf("container %s did not exit within %v: %v", c.Name, timeout, err)
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		c.t.Fatalf("docker wait %s said %q", c.Name, out)
	}
	return code
}

// Stop runs `docker stop` with Docker's own 10 s before SIGKILL, and returns the exit code
// and how long the stop took.
func (c *Container) Stop() (code int, took time.Duration) {
	c.t.Helper()
	start := time.Now()
	mustDocker(c.t, "stop", c.Name)
	took = time.Since(start)
	code, err := strconv.Atoi(c.inspect("{{.State.ExitCode}}"))
	if err != nil {
		c.t.Fatalf("exit code of %s: %v", c.Name, err)
	}
	return code, took
}

// stopWithin stops the container and checks that it exited with want before Docker's SIGKILL
// (which would be 137, after 10 s).
func (c *Container) stopWithin(want int) {
	c.t.Helper()
	code, took := c.Stop()
	if code != want || took > 5*time.Second {
		c.t.Errorf("docker stop: exit code %d after %v, want %d well before Docker's SIGKILL at 10s", code, took.Round(time.Millisecond), want)
	}
}

// Kill sends a signal with `docker kill -s`.
func (c *Container) Kill(sig string) {
	c.t.Helper()
	mustDocker(c.t, "kill", "--signal", sig, c.Name)
}

// Exec runs a command in the container with `docker exec`.
func (c *Container) Exec(args ...string) (string, error) {
	return dockerCmd(append([]string{"exec", c.Name}, args...)...)
}

// Logs is what tender and the app wrote, stdout and stderr.
func (c *Container) Logs() string {
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "logs", c.Name).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(docker logs: %v) %s", err, out)
	}
	return string(out)
}

// logged waits for the container's log to say substr.
func (c *Container) logged(substr string, timeout time.Duration) bool {
	return poll(timeout, 100*time.Millisecond, func() bool { return strings.Contains(c.Logs(), substr) })
}

// Addr is the host address published for the container's TCP port, from `docker port`.
func (c *Container) Addr(port string) string {
	c.t.Helper()
	out := strings.TrimSpace(mustDocker(c.t, "port", c.Name, port+"/tcp"))
	addr, _, _ := strings.Cut(out, "\n")
	if addr == "" {
		c.t.Fatalf("container %s publishes no port %s", c.Name, port)
	}
	return addr
}

// Status is `docker exec … tender status --json`.
func (c *Container) Status() (apps.Status, error) {
	out, err := c.Exec("tender", "status", "--json")
	if err != nil {
		return apps.Status{}, err
	}
	var st apps.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("tender status --json does not parse: %v\n%s", err, out)
	}
	return st, nil
}

// waitStatus polls the status until cond holds and returns that status. It polls ten times a
// second: each poll is a docker exec, which costs the machine a runc process.
func (c *Container) waitStatus(what string, timeout time.Duration, cond func(apps.Status) bool) apps.Status {
	c.t.Helper()
	var st apps.Status
	var err error
	if !poll(timeout, 100*time.Millisecond, func() bool { st, err = c.Status(); return err == nil && cond(st) }) {
		c.t.Fatalf("timed out after %v waiting for %s; last status %+v, error %v", timeout, what, st, err)
	}
	return st
}

// procs lists the processes of the container's PID namespace, from the host.
func (c *Container) procs() []Proc {
	c.t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", c.Pid()))
	if err != nil {
		c.t.Fatalf("the PID namespace of container %s: %v", c.Name, err)
	}
	var in []Proc
	for _, p := range procs() {
		if other, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p.Pid)); err == nil && other == ns {
			in = append(in, p)
		}
	}
	return in
}

// waitProc waits for a process of the container whose command line starts with prefix.
func (c *Container) waitProc(prefix string) Proc {
	c.t.Helper()
	var found Proc
	eventually(c.t, 10*time.Second, fmt.Sprintf("a process %q in container %s", prefix, c.Name), func() bool {
		for _, p := range c.procs() {
			if strings.HasPrefix(p.Cmdline, prefix) {
				found = p
				return true
			}
		}
		return false
	})
	return found
}

// oomKills is the count of OOM kills in the container's memory cgroup, as the kernel keeps it
// (cgroup v1: memory.oom_control; v2: memory.events).
func (c *Container) oomKills() int {
	c.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", c.Pid()))
	must(c.t, err)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		var file string
		switch {
		case f[1] == "memory":
			file = filepath.Join("/sys/fs/cgroup/memory", f[2], "memory.oom_control")
		case f[0] == "0" && f[1] == "":
			file = filepath.Join("/sys/fs/cgroup", f[2], "memory.events")
		default:
			continue
		}
		if n, err := readCounter(file, "oom_kill"); err == nil {
			return n
		}
	}
	c.t.Fatalf("no memory cgroup with an oom_kill count for container %s:\n%s", c.Name, b)
	return 0
}

// readCounter reads a "name N" line of a cgroup file.
func readCounter(file, name string) (int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == name {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, errors.New(file + " has no " + name)
}

// restarts is the count of restarts over every worker of a status.
func restarts(st apps.Status) int {
	n := 0
	for _, w := range st.Workers {
		n += w.Restarts
	}
	return n
}

// loadAt sends GET / to addr from n clients until stop is closed (load's loop, for a front that
// is a published port rather than a tender of the test's own).
func loadAt(addr string, n int) (ok, failed *atomic.Int64, errs chan string, stop chan struct{}) {
	stop = make(chan struct{})
	ok, failed, errs = load(&Front{Addr: addr}, n, stop)
	return ok, failed, errs, stop
}
