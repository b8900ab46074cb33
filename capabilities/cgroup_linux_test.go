package capabilities

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindCgroup(t *testing.T) {
	const (
		v2Root    = "35 30 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"
		v1Memory  = "40 32 0:35 / /sys/fs/cgroup/memory rw,nosuid shared:17 - cgroup cgroup rw,memory\n"
		v1CPU     = "41 32 0:36 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:18 - cgroup cgroup rw,cpu,cpuacct\n"
		unified   = "33 32 0:29 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
		procMount = "22 27 0:21 / /proc rw,relatime shared:13 - proc proc rw\n"
	)
	for _, tc := range []struct {
		name, cgroups, mountinfo string
		want                     Cgroup
	}{
		{"v2 with a cgroup namespace (Docker on a v2 host)", "0::/\n", procMount + v2Root,
			Cgroup{2, "/sys/fs/cgroup", "/sys/fs/cgroup"}},
		{"v2 without a cgroup namespace", "0::/system.slice/docker-abc.scope\n", v2Root,
			Cgroup{2, "/sys/fs/cgroup/system.slice/docker-abc.scope", "/sys/fs/cgroup/system.slice/docker-abc.scope"}},
		{"v1, the container's cgroup mounted as the root (Docker on a v1 host)",
			"12:memory:/docker/abc\n5:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n",
			"40 32 0:35 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n" +
				"41 32 0:36 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n",
			Cgroup{1, "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu,cpuacct"}},
		{"hybrid: v1 controllers win over the unified hierarchy listed first",
			"9:memory:/user.slice\n4:cpu,cpuacct:/user.slice\n0::/user.slice\n", unified + v1Memory + v1CPU,
			Cgroup{1, "/sys/fs/cgroup/memory/user.slice", "/sys/fs/cgroup/cpu,cpuacct/user.slice"}},
		{"hybrid: and listed last", "9:memory:/a\n4:cpu,cpuacct:/a\n0::/a\n", v1Memory + v1CPU + unified,
			Cgroup{1, "/sys/fs/cgroup/memory/a", "/sys/fs/cgroup/cpu,cpuacct/a"}},
		{"a path outside the mount's root is the root (a namespace)", "9:memory:/elsewhere\n",
			"40 32 0:35 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
			Cgroup{1, "/sys/fs/cgroup/memory", ""}},
		{"no cgroup file system mounted", "0::/\n", procMount, Cgroup{}},
		{"garbage", "what\n::\n", "not a mountinfo line\n- - -\n", Cgroup{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := findCgroup(strings.NewReader(tc.cgroups), strings.NewReader(tc.mountinfo))
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCgroupLimitsAndOOMKills(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version int
		files   map[string]string
		mem     uint64 // 0: no limit
		cpus    float64
		kills   uint64
	}{
		{"v1 without limits", 1, map[string]string{
			"memory.limit_in_bytes": "9223372036854771712\n",
			"cpu.cfs_quota_us":      "-1\n", "cpu.cfs_period_us": "100000\n",
			"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
		}, 0, 0, 2},
		{"v1 with limits", 1, map[string]string{
			"memory.limit_in_bytes": "67108864\n",
			"cpu.cfs_quota_us":      "50000\n", "cpu.cfs_period_us": "100000\n",
			"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
		}, 64 << 20, 0.5, 2},
		{"v2 without limits", 2, map[string]string{
			"memory.max":    "max\n",
			"cpu.max":       "max 100000\n",
			"memory.events": "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n",
		}, 0, 0, 1},
		{"v2 with limits", 2, map[string]string{
			"memory.max":    "67108864\n",
			"cpu.max":       "150000 100000\n",
			"memory.events": "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n",
		}, 64 << 20, 1.5, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cg := Cgroup{tc.version, dir, dir}
			if n, ok := cg.MemoryLimit(); ok != (tc.mem > 0) || (ok && n != tc.mem) {
				t.Errorf("memory limit %d %v, want %d (0: none)", n, ok, tc.mem)
			}
			if n, ok := cg.CPUQuota(); ok != (tc.cpus > 0) || (ok && n != tc.cpus) {
				t.Errorf("CPU quota %v %v, want %v (0: none)", n, ok, tc.cpus)
			}
			if n, ok := cg.OOMKills(); !ok || n != tc.kills {
				t.Errorf("OOM kills %d %v, want %d", n, ok, tc.kills)
			}
		})
	}
	if _, ok := (Cgroup{}).OOMKills(); ok {
		t.Error("OOM kills without a cgroup, want none")
	}
}

// Each OOM kill is reported once, to one SIGKILLed process: two workers killed together are
// both reported (taking the count at once reported only the first).
func TestOOMWatchAccountsOneKillEach(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "memory.events")
	setKills := func(n int) {
		if err := os.WriteFile(events, fmt.Appendf(nil, "oom 1\noom_kill %d\n", n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setKills(1)
	w := &OOMWatch{cg: Cgroup{2, dir, dir}, read: make(chan struct{}), seen: 1, ok: true}
	close(w.read)
	if w.Struck() {
		t.Fatal("struck with no kill since the start")
	}
	setKills(3)
	if first, second := w.Struck(), w.Struck(); !first || !second {
		t.Fatalf("two kills, reported %v and %v", first, second)
	}
	if w.Struck() {
		t.Fatal("a third SIGKILL taken for an OOM kill")
	}
}

// TENDER_WORKERS=auto: the quota rounded up, within the affinity mask, at least 1.
func TestUsableCPUs(t *testing.T) {
	for _, tc := range []struct {
		affinity int
		quota    float64
		hasQuota bool
		want     int
	}{
		{affinity: 8, want: 8},
		{affinity: 8, quota: 1.5, hasQuota: true, want: 2},
		{affinity: 8, quota: 0.2, hasQuota: true, want: 1},
		{affinity: 2, quota: 4, hasQuota: true, want: 2},
		{affinity: 2, quota: 2, hasQuota: true, want: 2},
		{affinity: 0, quota: 3.1, hasQuota: true, want: 4},
		{affinity: 0, want: 1},
	} {
		if got, why := usableCPUs(tc.affinity, tc.quota, tc.hasQuota); got != tc.want || why == "" {
			t.Errorf("affinity %d, quota %v (%v): %d (%s), want %d", tc.affinity, tc.quota, tc.hasQuota, got, why, tc.want)
		}
	}
}
