// Package capabilities finds out what the environment allows tender: PID 1 or not, the
// capability sets, how far oom_score_adj may go, /proc, no_new_privs, seccomp, cgroup limits
// and the fds inherited. It also wraps the system calls that act on those: oom_score_adj
// writes, close-on-exec marking.
package capabilities

import (
	"bytes"
	"os"
	"strings"
	"unsafe"

	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"
)

// Report is what Probe found.
type Report struct {
	Pid       int  `json:"pid"`
	PID1      bool `json:"pid1"`
	Subreaper bool `json:"subreaper"`
	UID       int  `json:"uid"`
	GID       int  `json:"gid"`
	// UserNamespace: uid 0 here is not root on the host.
	UserNamespace bool `json:"user_namespace"`

	Caps struct {
		Effective   []string `json:"effective"`
		Permitted   []string `json:"permitted"`
		Inheritable []string `json:"inheritable"`
		Bounding    []string `json:"bounding"`
		Ambient     []string `json:"ambient"`
	} `json:"capabilities"`

	OOM struct {
		Score int `json:"score"`
		// Lowest is the lowest score the kernel accepts from this process: -1000 with
		// CAP_SYS_RESOURCE, the process's minimum without it.
		Lowest         int    `json:"lowest"`
		CapSysResource bool   `json:"cap_sys_resource"`
		Error          string `json:"error,omitempty"`
	} `json:"oom_score_adj"`

	Proc struct {
		Mounted  bool `json:"mounted"`
		Writable bool `json:"writable"`
	} `json:"proc"`

	NoNewPrivs bool   `json:"no_new_privs"`
	Seccomp    string `json:"seccomp"` // disabled, strict or filter

	Cgroup      Cgroup   `json:"cgroup"`
	MemoryLimit *uint64  `json:"memory_limit_bytes"`
	CPUQuota    *float64 `json:"cpu_quota"`

	// InheritedFds are the fds >= 3 this process got from its parent; ListenFds of them
	// came by socket activation (LISTEN_FDS).
	InheritedFds []int `json:"inherited_fds"`
	ListenFds    int   `json:"listen_fds"`
}

// Probe finds out what this environment allows. To learn how low oom_score_adj may go it
// writes this process's own score and puts it back, so call it from `tender probe`, not from
// a running tender.
func Probe() Report {
	var r Report
	r.Pid = os.Getpid()
	r.PID1 = r.Pid == 1
	r.UID, r.GID = os.Getuid(), os.Getgid()
	r.InheritedFds = InheritedFds()
	r.ListenFds = SocketActivation()
	var subreaper int32 // PR_GET_CHILD_SUBREAPER stores the flag through a pointer
	if unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&subreaper)), 0, 0, 0) == nil {
		r.Subreaper = subreaper != 0
	}
	if uidMap, err := os.ReadFile("/proc/self/uid_map"); err == nil {
		f := strings.Fields(string(uidMap))
		r.UserNamespace = !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
	}

	if c, err := capability.NewPid2(0); err == nil && c.Load() == nil {
		for which, dst := range map[capability.CapType]*[]string{
			capability.EFFECTIVE: &r.Caps.Effective, capability.PERMITTED: &r.Caps.Permitted,
			capability.INHERITABLE: &r.Caps.Inheritable, capability.BOUNDING: &r.Caps.Bounding,
			capability.AMBIENT: &r.Caps.Ambient,
		} {
			*dst = []string{}
			for _, cp := range capability.ListKnown() {
				if c.Get(which, cp) {
					*dst = append(*dst, CapName(cp))
				}
			}
		}
		r.OOM.CapSysResource = c.Get(capability.EFFECTIVE, capability.CAP_SYS_RESOURCE)
	}

	r.Proc.Mounted = isProc("/proc")
	if score, err := OOMScoreAdjOf(0); err == nil {
		r.OOM.Score = score
		if low, err := LowestOOMScoreAdj(); err == nil {
			r.OOM.Lowest = low
			r.Proc.Writable = true
		} else {
			r.OOM.Lowest = score
			r.OOM.Error = err.Error()
		}
	} else {
		r.OOM.Error = err.Error()
	}

	if nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err == nil {
		r.NoNewPrivs = nnp == 1
	}
	r.Seccomp = seccompMode()

	r.Cgroup = FindCgroup()
	if v, ok := r.Cgroup.MemoryLimit(); ok {
		r.MemoryLimit = &v
	}
	if v, ok := r.Cgroup.CPUQuota(); ok {
		r.CPUQuota = &v
	}
	return r
}

func isProc(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.PROC_SUPER_MAGIC
}

// seccompMode reads the Seccomp line of /proc/self/status (asking with prctl would kill a
// process in strict mode).
func seccompMode() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Seccomp:")); ok {
			switch string(bytes.TrimSpace(v)) {
			case "0":
				return "disabled"
			case "1":
				return "strict"
			case "2":
				return "filter"
			}
		}
	}
	return "unknown"
}
