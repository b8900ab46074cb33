package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/tenderinit/tender/capabilities"
	"github.com/tenderinit/tender/config"
)

// Finding is one line of `tender probe`: what was found and what it means for the user.
type Finding struct {
	Topic   string `json:"topic"`
	Found   string `json:"found"`
	Meaning string `json:"meaning"`
}

// probe prints what this environment allows and what tender will do in it.
func probe(cfg *config.Config, w io.Writer) int {
	r := capabilities.Probe()
	findings := explain(r, cfg)
	if cfg.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Report   capabilities.Report `json:"report"`
			Findings []Finding           `json:"findings"`
		}{r, findings}); err != nil {
			return 1
		}
		return 0
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tFOUND\tWHAT IT MEANS")
	for _, f := range findings {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Topic, f.Found, f.Meaning)
	}
	tw.Flush()
	return 0
}

// explain turns the report into findings, given what tender is configured to do.
func explain(r capabilities.Report, cfg *config.Config) []Finding {
	var out []Finding
	add := func(topic, found, meaning string) { out = append(out, Finding{topic, found, meaning}) }
	has := func(c string) bool { return slices.Contains(r.Caps.Effective, c) }

	if r.PID1 {
		add("PID 1", "yes", "tender reaps every process in the container and ends them all when the app exits")
	} else {
		add("PID 1", fmt.Sprintf("no (pid %d)", r.Pid), "tender registers as a child subreaper: it reaps and ends its own descendants only")
	}

	user := fmt.Sprintf("uid %d, gid %d", r.UID, r.GID)
	if r.UserNamespace {
		user += " (in a user namespace)"
	}
	switch {
	case has("CAP_SETUID") && has("CAP_SETGID"):
		add("user", user, "TENDER_APP_USER can run the apps as another user")
	case cfg.AppUser != "":
		add("user", user, "TENDER_APP_USER="+cfg.AppUser+" will fail: changing user needs CAP_SETUID and CAP_SETGID")
	default:
		add("user", user, "the apps run as this user; TENDER_APP_USER would need CAP_SETUID and CAP_SETGID")
	}

	switch {
	case len(r.Caps.Effective) == 0:
		add("capabilities", "none", "the apps get none either; TENDER_APP_CAPS can keep nothing")
	case has("CAP_SETPCAP") && len(r.Caps.Effective) > 16:
		add("capabilities", fmt.Sprintf("%d effective", len(r.Caps.Effective)), "TENDER_APP_CAPS can keep any of them (tender probe --json lists them)")
	case has("CAP_SETPCAP"):
		add("capabilities", fmt.Sprintf("%d effective", len(r.Caps.Effective)), "TENDER_APP_CAPS can keep any of: "+strings.Join(short(r.Caps.Effective), " "))
	default:
		add("capabilities", fmt.Sprintf("%d effective", len(r.Caps.Effective)), "TENDER_APP_CAPS cannot drop capabilities from the bounding set: that needs CAP_SETPCAP")
	}

	out = append(out, explainOOM(r, cfg))

	switch {
	case !r.Proc.Mounted:
		add("/proc", "not mounted", "tender cannot set OOM scores nor find its descendants: it signals only the children it started")
	case !r.Proc.Writable:
		add("/proc", "read-only", "tender cannot change OOM scores; the apps inherit tender's")
	default:
		add("/proc", "mounted, writable", "OOM scores can be set and read back; descendants are found")
	}

	if r.NoNewPrivs {
		add("no_new_privs", "set", "already set for tender and every app: setuid binaries gain nothing")
	} else {
		add("no_new_privs", "not set", "set TENDER_APP_NO_NEW_PRIVS=true to keep the apps from gaining privileges through setuid binaries")
	}
	add("seccomp", r.Seccomp, map[string]string{
		"disabled": "no system call filter", "filter": "a system call filter applies to tender and every app",
		"strict": "strict mode: only read, write, exit and sigreturn", "unknown": "cannot tell",
	}[r.Seccomp])

	if r.MemoryLimit != nil {
		add("memory limit", fmt.Sprintf("%s (cgroup v%d)", bytesHuman(*r.MemoryLimit), r.Cgroup.Version),
			"the OOM killer acts when the container uses more; TENDER_MEMORY_LIMIT recycles a worker before that")
	} else {
		add("memory limit", "none", "only the host's memory bounds the container")
	}
	if r.CPUQuota != nil {
		add("CPU quota", fmt.Sprintf("%.2f CPUs", *r.CPUQuota), "the Go runtime in tender sizes itself to it")
	} else {
		add("CPU quota", "none", "")
	}

	inherited := r.InheritedFds
	if r.ListenFds > 0 {
		add("socket activation", fmt.Sprintf("fds 3-%d", 2+r.ListenFds), "the apps receive them at the same numbers, with LISTEN_PID set to their own pid")
		inherited = inherited[min(r.ListenFds, len(inherited)):]
	}
	if len(inherited) > 0 {
		add("inherited fds", strings.Trim(fmt.Sprint(inherited), "[]"), "hidden from the apps: every app starts with fds 0, 1 and 2 only")
	} else {
		add("inherited fds", "none", "every app starts with fds 0, 1 and 2 only")
	}
	return out
}

// explainOOM says how far tender can protect itself from the OOM killer, and the remedy.
func explainOOM(r capabilities.Report, cfg *config.Config) Finding {
	f := Finding{Topic: "oom_score_adj", Found: fmt.Sprintf("%d now, lowest allowed %d", r.OOM.Score, r.OOM.Lowest)}
	if r.OOM.Error != "" {
		f.Found = "cannot be changed"
		f.Meaning = "tender and the apps keep the score they have (" + r.OOM.Error + ")"
		return f
	}
	apps := r.OOM.Score
	if cfg.AppOOMScoreAdj != nil {
		apps = cfg.AppOOMScoreAdj.Resolve(r.OOM.Score)
	}
	if cfg.OOMScoreAdj == nil {
		f.Meaning = fmt.Sprintf("TENDER_OOM_SCORE_ADJ=off: tender stays at %d, the apps start at %d", r.OOM.Score, apps)
		return f
	}
	target := *cfg.OOMScoreAdj
	got := max(target, r.OOM.Lowest)
	if target >= r.OOM.Score {
		got = target
	}
	if got == target {
		f.Meaning = fmt.Sprintf("tender will run at %d and the apps at %d", got, apps)
		return f
	}
	f.Meaning = fmt.Sprintf("cannot lower oom_score_adj below %d (no CAP_SYS_RESOURCE): tender will run at %d, not %d; %s",
		r.OOM.Lowest, got, target, capabilities.OOMAdvice(got, apps))
	return f
}

func short(caps []string) []string {
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = strings.TrimPrefix(c, "CAP_")
	}
	return out
}

func bytesHuman(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}
