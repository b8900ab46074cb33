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

// Descendants lists the processes below root in the process tree, read from /proc.
func Descendants(root int) ([]Proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := make(map[int][]Proc)
	buf := make([]byte, 512)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, start, ok := readStat(pid, buf); ok {
			children[ppid] = append(children[ppid], Proc{pid, start})
		}
	}
	var out []Proc
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
	if _, start, ok := readStat(p.Pid, make([]byte, 512)); !ok || start != p.Start {
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

// readStat reads the parent pid and start time from /proc/<pid>/stat.
func readStat(pid int, buf []byte) (ppid int, start uint64, ok bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false // gone since ReadDir
	}
	n, _ := f.Read(buf)
	f.Close()
	return ParseStat(buf[:n])
}

// ParseStat extracts the parent pid and the start time from the contents of a /proc/<pid>/stat
// file: "pid (comm) state ppid ... starttime ...", where comm may itself hold spaces and
// parentheses, so the fields are counted from the last ')'; starttime is the 22nd field.
func ParseStat(stat []byte) (ppid int, start uint64, ok bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := bytes.Fields(stat[i+1:]) // from the 3rd field, state, on
	if len(fields) < 20 {
		return 0, 0, false
	}
	ppid, err1 := strconv.Atoi(string(fields[1]))
	start, err2 := strconv.ParseUint(string(fields[19]), 10, 64)
	return ppid, start, err1 == nil && err2 == nil
}
