package apps

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tenderinit/tender/capabilities"
	"github.com/tenderinit/tender/procfile"
)

// Status is what `tender status` shows: the worker table, the queue and tender itself.
type Status struct {
	Workers []WorkerStatus `json:"workers"`
	Queue   int            `json:"queue"`
	Tender  TenderStatus   `json:"tender"`
}

// TenderStatus is tender's own line of the status.
type TenderStatus struct {
	Pid         int `json:"pid"`
	OOMScoreAdj int `json:"oom_score_adj"`
	// Stopping: tender got SIGTERM or SIGINT, and is in its shutdown delay or its stop.
	Stopping bool `json:"stopping"`
}

// Health says whether tender can take work: it is not stopping, and it can serve. That is a
// ready web worker (in pool mode the workers are web; in single mode, the app running); in a
// Procfile without web, a worker of every type up (ready, or running). The release phase
// serves nothing yet. why says it in one line, either way.
func (s Status) Health() (ok bool, why string) {
	if s.Tender.Stopping {
		return false, "tender is stopping (SIGTERM or SIGINT received)"
	}
	var web []WorkerStatus
	for _, w := range s.Workers {
		switch w.Type {
		case procfile.Release:
			return false, "the release phase is running"
		case procfile.Web, "":
			web = append(web, w)
		}
	}
	if len(web) == 0 && len(s.Workers) > 0 {
		return s.everyTypeUp()
	}
	ready := 0
	for _, w := range web {
		if w.up() {
			ready++
		}
	}
	switch {
	case ready == 0 && len(web) == 1:
		return false, "the app is not ready: " + web[0].State
	case ready == 0:
		return false, fmt.Sprintf("none of %d workers is ready", len(web))
	case len(web) == 1:
		return true, "the app is " + web[0].State
	}
	return true, fmt.Sprintf("%d of %d workers ready", ready, len(web))
}

// everyTypeUp is the health of a Procfile without web: every type has a worker up.
func (s Status) everyTypeUp() (ok bool, why string) {
	var types []string
	up := map[string]int{}
	for _, w := range s.Workers {
		if _, seen := up[w.Type]; !seen {
			types = append(types, w.Type)
			up[w.Type] = 0
		}
		if w.up() {
			up[w.Type]++
		}
	}
	for _, t := range types {
		if up[t] == 0 {
			return false, "no worker of process type " + t + " is up"
		}
	}
	return true, fmt.Sprintf("every process type has a worker up (%s)", strings.Join(types, ", "))
}

// up reports whether the worker does its work: ready, or running.
func (w WorkerStatus) up() bool { return w.State == string(Ready) || w.State == Running }

// WorkerStatus is one worker's line.
type WorkerStatus struct {
	ID int `json:"id"`
	// Type is the worker's process type: web in pool mode, a Procfile's name, "" in single mode.
	Type          string  `json:"type"`
	Pid           int     `json:"pid"`
	State         string  `json:"state"`
	Sessions      int64   `json:"sessions"`
	Processed     uint64  `json:"processed"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Restarts      int     `json:"restarts"`
	RSSBytes      uint64  `json:"rss_bytes"` // of the worker's process tree: see TreeMemory
	OOMScoreAdj   int     `json:"oom_score_adj"`
	// CrashLoop says that the worker's slot has crashed quickly more than TENDER_MAX_RESTARTS
	// times in a row, and retries while the others serve.
	CrashLoop bool `json:"crash_loop,omitempty"`
	// LastFailure is the spawn report of the worker's last failed start, if any.
	LastFailure *SpawnReport `json:"last_failure,omitempty"`
}

// SpawnReport says how a worker that failed to start ended.
type SpawnReport struct {
	Pid             int       `json:"pid"`
	Exit            string    `json:"exit"`           // "exit status 1", "killed by SIGKILL", "did not become ready"
	Step            string    `json:"step,omitempty"` // the clean-start step that failed, if one did
	LifetimeSeconds float64   `json:"lifetime_seconds"`
	At              time.Time `json:"at"`
	Output          []string  `json:"output"` // its last lines of output
}

// StatusSource gives the status of the running app processes.
type StatusSource interface {
	Status() Status
}

// fillFromProc adds what only /proc knows: the memory (TreeMemory: the worker's process tree,
// as TENDER_MEMORY_LIMIT weighs it) and oom_score_adj of each worker, and tender's own score.
func (s *Status) fillFromProc() {
	var tree processes
	for i := range s.Workers {
		w := &s.Workers[i]
		if w.Pid == 0 {
			continue
		}
		if tree == nil {
			tree = readProcesses()
		}
		w.RSSBytes = tree.treeMemory(w.Pid)
		w.OOMScoreAdj, _ = capabilities.OOMScoreAdjOf(w.Pid)
	}
	s.Tender.Pid = os.Getpid() // Stopping is the pool's or the single child's to say
	s.Tender.OOMScoreAdj, _ = capabilities.OOMScoreAdjOf(0)
}

// RSS is the resident set of pid in bytes, from /proc/<pid>/statm (0 when it is gone).
func RSS(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// WriteTable prints the status as `tender status` does: with a TYPE column but in single
// mode, which has no process type.
func (s *Status) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	typed := slices.ContainsFunc(s.Workers, func(r WorkerStatus) bool { return r.Type != "" })
	if typed {
		fmt.Fprint(tw, "TYPE\t")
	}
	fmt.Fprintln(tw, "ID\tPID\tSTATE\tSESSIONS\tPROCESSED\tUPTIME\tRESTARTS\tRSS\tOOM_SCORE_ADJ")
	for _, r := range s.Workers {
		pid, rss, oom := "-", "-", "-"
		if r.Pid != 0 {
			pid, rss, oom = strconv.Itoa(r.Pid), mib(r.RSSBytes), strconv.Itoa(r.OOMScoreAdj)
		}
		if typed {
			fmt.Fprintf(tw, "%s\t", r.Type)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\n", r.ID, pid, r.State, r.Sessions, r.Processed,
			(time.Duration(r.UptimeSeconds) * time.Second).String(), r.Restarts, rss, oom)
	}
	tw.Flush()
	fmt.Fprintf(w, "queue: %d   tender: pid %d, oom_score_adj %d\n", s.Queue, s.Tender.Pid, s.Tender.OOMScoreAdj)
	if ids := s.CrashLoops(); len(ids) > 0 {
		fmt.Fprintf(w, "in a crash loop, retrying while the others serve: worker %s\n", strings.Join(ids, ", "))
	}
	for _, r := range s.Workers {
		if f := r.LastFailure; f != nil {
			fmt.Fprintf(w, "\nlast failed start of worker %s (pid %d, %s ago): %s after %.1fs", s.name(r), f.Pid,
				time.Since(f.At).Round(time.Second), f.Exit, f.LifetimeSeconds)
			if f.Step != "" {
				fmt.Fprintf(w, " in step %q", f.Step)
			}
			fmt.Fprintln(w)
			for _, line := range f.Output {
				fmt.Fprintf(w, "  | %s\n", line)
			}
		}
	}
}

// CrashLoops are the names of the workers in a crash loop, once each (see name).
func (s *Status) CrashLoops() []string {
	var ids []string
	for _, r := range s.Workers {
		if id := s.name(r); r.CrashLoop && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// name names worker r in the lines below the table: its id, or with several process types,
// its type and id, as its output is labelled (worker.1).
func (s *Status) name(r WorkerStatus) string {
	for _, o := range s.Workers {
		if o.Type != r.Type {
			return r.Type + "." + strconv.Itoa(r.ID)
		}
	}
	return strconv.Itoa(r.ID)
}

func mib(b uint64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }
