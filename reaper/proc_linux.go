package reaper

import (
	"bytes"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Proc is a process found in /proc: its pid, and its start time (in clock ticks after boot),
// which tells it from a later process given the same pid.
type Proc struct {
	Pid   int
	Start uint64
}

// Stat is what tender reads of a process in /proc/<pid>/stat.
type Stat struct {
	Name  string // comm: the program's name, at most 15 bytes
	State byte   // R, S, D, T (stopped), t (traced), Z...
	PPid  int
	Pgid  int // its process group
	Start uint64
}

// Stopped reports whether the process is stopped (by a signal, or by its tracer).
func (s Stat) Stopped() bool { return s.State == 'T' || s.State == 't' }

// Process is a process found in /proc, with its stat.
type Process struct {
	Proc
	Stat
}

// Descendants lists the processes below root in the process tree, read from /proc.
func Descendants(root int) ([]Proc, error) {
	below, err := Below(root)
	procs := make([]Proc, len(below))
	for i, p := range below {
		procs[i] = p.Proc
	}
	return procs, err
}

// Below lists the processes below root in the process tree, with their stat; root 0 lists
// every process but this one (in a PID namespace, those that entered it with setns have a
// parent outside, pid 0 here).
func Below(root int) ([]Process, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	children := make(map[int][]Process)
	var all []Process
	buf := make([]byte, 512)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if st, ok := readStat(pid, buf); ok {
			p := Process{Proc{pid, st.Start}, st}
			children[st.PPid] = append(children[st.PPid], p)
			all = append(all, p)
		}
	}
	if root == 0 {
		return all, nil
	}
	var out []Process
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c.Pid)
		}
	}
	return out, nil
}

// Signal sends sigs to p, unless p is gone. It signals through a pidfd, once that pidfd is
// known to hold the process found (the pid's start time is still p's), so that a pid freed and
// given to another process since /proc was read is never signalled. Where there are no pidfds
// (before Linux 5.3, or a seccomp profile that refuses them, as Docker's did before 20.10) it
// falls back on kill after the same check, which narrows that window but cannot close it.
func (p Proc) Signal(sigs ...syscall.Signal) error {
	fd, err := pidfdOpen(p.Pid, 0)
	switch {
	case err == unix.ESRCH:
		return err
	case err == nil:
		defer unix.Close(fd)
	default:
		fd = -1
	}
	if st, ok := readStat(p.Pid, make([]byte, 512)); !ok || st.Start != p.Start {
		return unix.ESRCH // the pid is another process's now
	}
	for _, sig := range sigs {
		if fd >= 0 {
			err = pidfdSendSignal(fd, sig, nil, 0)
			if err == nil || err == unix.ESRCH {
				continue
			}
			// A profile may allow pidfd_open and still refuse pidfd_send_signal.
		}
		err = unix.Kill(p.Pid, sig)
	}
	return err
}

// The pidfd system calls, variables for the tests of the fallback.
var (
	pidfdOpen       = unix.PidfdOpen
	pidfdSendSignal = unix.PidfdSendSignal
)

// readStat reads /proc/<pid>/stat.
func readStat(pid int, buf []byte) (Stat, bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, false // gone since ReadDir
	}
	n, _ := f.Read(buf)
	f.Close()
	return ParseStat(buf[:n])
}

// ParseStat reads the contents of a /proc/<pid>/stat file: "pid (comm) state ppid ...
// starttime ...", where comm may itself hold spaces and parentheses, so the fields are counted
// from the last ')'; starttime is the 22nd field.
func ParseStat(stat []byte) (Stat, bool) {
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return Stat{}, false
	}
	fields := bytes.Fields(stat[end+1:]) // from the 3rd field, state, on
	if len(fields) < 20 || len(fields[0]) != 1 {
		return Stat{}, false
	}
	ppid, err1 := strconv.Atoi(string(fields[1]))
	pgid, err2 := strconv.Atoi(string(fields[2]))
	start, err3 := strconv.ParseUint(string(fields[19]), 10, 64)
	st := Stat{Name: string(stat[open+1 : end]), State: fields[0][0], PPid: ppid, Pgid: pgid, Start: start}
	return st, err1 == nil && err2 == nil && err3 == nil
}
