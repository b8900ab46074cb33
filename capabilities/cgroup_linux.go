package capabilities

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Cgroup is where this process's cgroup files are, for the controllers tender reads.
type Cgroup struct {
	Version   int    `json:"version"`    // 1 or 2, 0 when none is found
	MemoryDir string `json:"memory_dir"` // the directory of memory.* files
	CPUDir    string `json:"cpu_dir"`    // the directory of cpu.* files
}

// FindCgroup locates this process's cgroup directories from /proc/self/cgroup and
// /proc/self/mountinfo.
func FindCgroup() Cgroup {
	cgroups, err := readProcFile("/proc/self/cgroup")
	if err != nil {
		return Cgroup{}
	}
	mountinfo, err := readProcFile("/proc/self/mountinfo")
	if err != nil {
		return Cgroup{}
	}
	return findCgroup(bytes.NewReader(cgroups), bytes.NewReader(mountinfo))
}

// findCgroup reads the cgroup directories from a /proc/PID/cgroup and a /proc/PID/mountinfo.
// Without a cgroup namespace the process's cgroup is a path below the mount's root, so the
// directory is the mount point joined with that path relative to the root. On a hybrid host
// the v1 memory and cpu controllers win over the (controller-less) v2 hierarchy.
func findCgroup(cgroups, mountinfo io.Reader) Cgroup {
	paths := map[string]string{} // controller ("" for v2) -> cgroup path
	sc := bufio.NewScanner(cgroups)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			paths[c] = parts[2]
		}
	}

	var cg Cgroup
	sc = bufio.NewScanner(mountinfo)
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source superoptions
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(fields) || len(fields) < 5 {
			continue
		}
		root, mount, fstype, super := fields[3], fields[4], fields[sep+1], fields[sep+3]
		dir := func(path string) string {
			rel, err := filepath.Rel(root, path)
			if err != nil || strings.HasPrefix(rel, "..") {
				rel = "." // a cgroup namespace shows our own cgroup as the root
			}
			return filepath.Join(mount, rel)
		}
		switch fstype {
		case "cgroup2":
			if p, ok := paths[""]; ok && cg.Version == 0 {
				cg.Version, cg.MemoryDir, cg.CPUDir = 2, dir(p), dir(p)
			}
		case "cgroup":
			for _, opt := range strings.Split(super, ",") {
				if p, ok := paths[opt]; ok && (opt == "memory" || opt == "cpu") {
					if cg.Version != 1 {
						cg = Cgroup{Version: 1}
					}
					if opt == "memory" {
						cg.MemoryDir = dir(p)
					} else {
						cg.CPUDir = dir(p)
					}
				}
			}
		}
	}
	return cg
}

// MemoryLimit is the cgroup's memory limit in bytes; ok is false when there is none.
func (cg Cgroup) MemoryLimit() (limit uint64, ok bool) {
	switch cg.Version {
	case 1:
		n, err := readUint(filepath.Join(cg.MemoryDir, "memory.limit_in_bytes"))
		// v1 says "no limit" with a huge number near 2^63, rounded to a page.
		return n, err == nil && n < 1<<62
	case 2:
		n, err := readUint(filepath.Join(cg.MemoryDir, "memory.max")) // "max" fails to parse
		return n, err == nil
	}
	return 0, false
}

// CPUQuota is the cgroup's CPU limit in CPUs; ok is false when there is none.
func (cg Cgroup) CPUQuota() (cpus float64, ok bool) {
	var quota, period float64
	switch cg.Version {
	case 1:
		q, err1 := readInt(filepath.Join(cg.CPUDir, "cpu.cfs_quota_us"))
		p, err2 := readInt(filepath.Join(cg.CPUDir, "cpu.cfs_period_us"))
		if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
			return 0, false
		}
		quota, period = float64(q), float64(p)
	case 2:
		b, err := readProcFile(filepath.Join(cg.CPUDir, "cpu.max"))
		f := strings.Fields(string(b))
		if err != nil || len(f) != 2 || f[0] == "max" {
			return 0, false
		}
		quota, _ = strconv.ParseFloat(f[0], 64)
		period, _ = strconv.ParseFloat(f[1], 64)
		if quota <= 0 || period <= 0 {
			return 0, false
		}
	default:
		return 0, false
	}
	return quota / period, true
}

// OOMKills is how many processes the OOM killer has killed in the cgroup so far.
func (cg Cgroup) OOMKills() (uint64, bool) {
	file := "memory.events"
	if cg.Version == 1 {
		file = "memory.oom_control"
	}
	if cg.Version == 0 {
		return 0, false
	}
	b, err := readProcFile(filepath.Join(cg.MemoryDir, file))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

func readUint(path string) (uint64, error) {
	b, err := readProcFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

func readInt(path string) (int64, error) {
	b, err := readProcFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// OOMWatch tells whether the OOM killer struck in tender's cgroup since it last looked.
type OOMWatch struct {
	cg   Cgroup
	read chan struct{} // closed once cg, seen and ok are set
	seen uint64
	ok   bool
}

// WatchOOMKills starts counting OOM kills from now. It reads the count in the background, off
// tender's way to starting the app; Struck waits for it.
func WatchOOMKills() *OOMWatch {
	w := &OOMWatch{read: make(chan struct{})}
	go func() {
		w.cg = FindCgroup()
		w.seen, w.ok = w.cg.OOMKills()
		close(w.read)
	}()
	return w
}

// Cgroup is tender's cgroup, as the watch found it (once it has).
func (w *OOMWatch) Cgroup() Cgroup {
	<-w.read
	return w.cg
}

// Struck is asked for a process that SIGKILL ended: it reports whether the cgroup's OOM kill
// count has a kill not yet accounted for, and accounts one. Workers killed together are each
// reported; a kill of another process of the cgroup may still be taken for a later SIGKILL.
func (w *OOMWatch) Struck() bool {
	if w == nil {
		return false
	}
	<-w.read
	if !w.ok {
		return false
	}
	if n, ok := w.cg.OOMKills(); !ok || n <= w.seen {
		return false
	}
	w.seen++
	return true
}

// UsableCPUs is how many CPUs this process may use: the cgroup's CPU quota rounded up, within
// the CPUs of its affinity mask (as the Go runtime sizes GOMAXPROCS), at least 1. why says
// where the figure comes from, for the log.
func UsableCPUs(cg Cgroup) (n int, why string) {
	affinity := 0
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) == nil {
		affinity = set.Count()
	}
	quota, hasQuota := cg.CPUQuota()
	return usableCPUs(affinity, quota, hasQuota)
}

func usableCPUs(affinity int, quota float64, hasQuota bool) (int, string) {
	byQuota := int(math.Ceil(quota))
	switch {
	case hasQuota && (affinity == 0 || byQuota < affinity):
		return max(byQuota, 1), fmt.Sprintf("the cgroup's CPU quota, %.2f CPUs, rounded up", quota)
	case affinity > 0:
		return affinity, fmt.Sprintf("the CPUs tender may run on (its affinity mask), %d", affinity)
	}
	return 1, "no CPU count found"
}
