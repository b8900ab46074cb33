package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// dockerDefaultCaps is the capability set Docker gives a container that was not started
// with --privileged or --cap-add: the "unprivileged container" of tender's contract.
var dockerDefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// allCaps is every capability this machine can give, the "privileged container". (The test
// machines lack CAP_SYS_RESOURCE themselves, so no container of theirs can have it.)
func allCaps(t *testing.T) []string {
	var caps []string
	for _, c := range capability.ListKnown() {
		if on, err := capability.GetBound(c); err == nil && on {
			caps = append(caps, "CAP_"+strings.ToUpper(c.String()))
		}
	}
	return caps
}

// Bundle is an OCI bundle: a rootfs holding only tender and the test program (no
// distribution), and a config.json written from runtime-spec types.
type Bundle struct {
	Dir  string
	Out  string // a host directory mounted at /out in the container
	Spec *specs.Spec
}

var containerSeq atomic.Int64

// newBundle makes a bundle that runs tender with args, with the given capabilities.
func newBundle(t *testing.T, caps []string, env []string, args ...string) *Bundle {
	t.Helper()
	needRoot(t)
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("runc is not installed: .ci/run installs it (apt-get install -y runc)")
	}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	out := filepath.Join(dir, "out")
	for _, d := range []string{"proc", "dev", "sys", "tmp", "out", "etc", "home/app"} {
		must(t, os.MkdirAll(filepath.Join(rootfs, d), 0o755))
	}
	must(t, os.MkdirAll(out, 0o777))
	must(t, os.Chmod(out, 0o777)) // apps may run as another user
	copyFile(t, bin.tender, filepath.Join(rootfs, "tender"))
	copyFile(t, bin.testapp, filepath.Join(rootfs, "testapp"))
	must(t, os.WriteFile(filepath.Join(rootfs, "etc/passwd"),
		[]byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(rootfs, "etc/group"),
		[]byte("root:x:0:\napp:x:1000:\nstaff:x:50:app\n"), 0o644))

	capsOf := func() []string { return append([]string(nil), caps...) }
	spec := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs", Readonly: true},
		Process: &specs.Process{
			Args: append([]string{"/tender"}, args...),
			Env:  append([]string{"PATH=/", "HOME=/root"}, env...),
			Cwd:  "/",
			User: specs.User{UID: 0, GID: 0},
			Capabilities: &specs.LinuxCapabilities{
				Bounding: capsOf(), Effective: capsOf(), Permitted: capsOf(),
			},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 4096, Soft: 1024}},
		},
		Hostname: "tender-test",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
			{Destination: "/out", Type: "bind", Source: out, Options: []string{"rbind", "rw"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace},
			},
			CgroupsPath:   fmt.Sprintf("/tender-e2e/%d-%d", os.Getpid(), containerSeq.Add(1)),
			MaskedPaths:   []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	return &Bundle{Dir: dir, Out: out, Spec: spec}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	must(t, err)
	must(t, os.WriteFile(to, b, 0o755))
}

// run writes config.json and starts the container with `runc run`, in the foreground.
func (b *Bundle) run(t *testing.T) *Run {
	t.Helper()
	cfg, err := json.MarshalIndent(b.Spec, "", "  ")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(b.Dir, "config.json"), cfg, 0o644))
	root := filepath.Join(b.Dir, "runc-root")
	id := fmt.Sprintf("tender-e2e-%d-%d", os.Getpid(), containerSeq.Add(1))
	t.Cleanup(func() { _ = exec.Command("runc", "--root", root, "delete", "--force", id).Run() })
	return startCmd(t, exec.Command("runc", "--root", root, "run", "--bundle", b.Dir, id), nil, 1)
}
