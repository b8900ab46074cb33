package apps

import (
	"bytes"
	"os"
	"slices"
	"strconv"

	"github.com/tenderinit/tender/reaper"
)

// TreeMemory is the memory of pid and every process below it, what TENDER_MEMORY_LIMIT
// weighs: a worker started as `npm start` is npm and the node it runs. Each process counts by
// its PSS (its own pages, and its share of those it shares: a preforked master and its
// children do not count their common pages twice) where /proc/<pid>/smaps_rollup can be read,
// else by its RSS. 0 when pid is gone.
func TreeMemory(pid int) uint64 { return readProcesses().treeMemory(pid) }

// processes is who is below whom, from one read of /proc: the pool weighs every worker's tree
// with one.
type processes map[int][]int // children by parent

func readProcesses() processes {
	all, _ := reaper.Below(0)
	ps := make(processes)
	for _, p := range all {
		ps[p.PPid] = append(ps[p.PPid], p.Pid)
	}
	return ps
}

// treeMemory is TreeMemory, with the tree as ps saw it.
func (ps processes) treeMemory(pid int) uint64 {
	total := processMemory(pid)
	if total == 0 {
		return 0
	}
	queue := slices.Clone(ps[pid])
	for len(queue) > 0 {
		child := queue[0]
		queue = append(queue[1:], ps[child]...)
		total += processMemory(child)
	}
	return total
}

// processMemory is one process's PSS, or its RSS where its smaps_rollup cannot be read (Linux
// before 4.14, or another user's process without CAP_SYS_PTRACE).
func processMemory(pid int) uint64 {
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup"); err == nil {
		if pss, ok := parsePss(b); ok {
			return pss
		}
	}
	return RSS(pid)
}

// parsePss reads the Pss line of a smaps_rollup file, in bytes.
func parsePss(b []byte) (uint64, bool) {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		if rest, ok := bytes.CutPrefix(line, []byte("Pss:")); ok {
			f := bytes.Fields(rest)
			if len(f) != 2 || string(f[1]) != "kB" {
				return 0, false
			}
			kb, err := strconv.ParseUint(string(f[0]), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}
