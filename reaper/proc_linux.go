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
	var all []Process
	children := make(map[int][]Process) // unused when root is 0
	buf := make([]byte, 512)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if st, ok := readStat(pid, buf); ok {
			p := Process{Proc{pid, st.Start}, st}
			if root == 0 {
				all = append(all, p)
			} else {
				children[st.PPid] = append(children[st.PPid], p)
			}
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
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stat{}, false // gone since ReadDir
	}
	n, err := unix.Read(fd, buf)
	unix.Close(fd)
	if err != nil {
		return Stat{}, false
	}
	return ParseStat(buf[:n])
}

// ParseStat reads the contents of a /proc/<pid>/stat file: "pid (comm) state ppid ...
// starttime ...", where comm may itself hold spaces and parentheses, so the fields are counted
// from the last ')'; starttime is the 22nd field. It allocates nothing but the name: the pool
// reads every process's stat when a worker becomes ready or exits.
func ParseStat(stat []byte) (Stat, bool) {
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return Stat{}, false
	}
	var st Stat
	rest := stat[end+1:]
	for i := 0; i <= 19; i++ { // from the 3rd field, state, to the 22nd, starttime
		rest = bytes.TrimLeft(rest, " \n")
		n := bytes.IndexAny(rest, " \n")
		if n < 0 {
			n = len(rest)
		}
		field := rest[:n]
		rest = rest[n:]
		ok := len(field) > 0
		switch {
		case !ok:
		case i == 0:
			st.State, ok = field[0], len(field) == 1
		case i == 1:
			st.PPid, ok = parseInt(field)
		case i == 2:
			st.Pgid, ok = parseInt(field)
		case i == 19:
			st.Start, ok = parseUint(field)
		}
		if !ok {
			return Stat{}, false
		}
	}
	st.Name = string(stat[open+1 : end])
	return st, true
}

// parseInt reads a pid of /proc.
func parseInt(b []byte) (int, bool) {
	n, ok := parseUint(b)
	return int(n), ok && n <= 1<<31
}

// parseUint reads a decimal number of /proc, without the allocation of strconv's error.
func parseUint(b []byte) (uint64, bool) {
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' || n > (1<<64-1)/10-1 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, len(b) > 0
}
