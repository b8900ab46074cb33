package reaper

import (
	"bytes"
	"os"
	"strconv"
)

// Descendants lists the processes below root in the process tree, read from /proc.
func Descendants(root int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := make(map[int][]int)
	buf := make([]byte, 512)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := readPPid(pid, buf); ok {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out, nil
}

// readPPid reads the parent pid from /proc/<pid>/stat: "pid (comm) state ppid ...", where
// comm may itself hold spaces and parentheses, so the fields start after the last ')'.
func readPPid(pid int, buf []byte) (int, bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false // gone since ReadDir
	}
	n, _ := f.Read(buf)
	f.Close()
	return ParseStatPPid(buf[:n])
}

// ParseStatPPid extracts the parent pid from the contents of a /proc/<pid>/stat file.
func ParseStatPPid(stat []byte) (int, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	fields := bytes.Fields(stat[i+1:])
	if len(fields) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	return ppid, err == nil
}
