package apps

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"

	"golang.org/x/sys/unix"
)

// maxLine is the longest line passed on in one piece; a longer one is passed on in pieces.
// Lines are read through a small buffer (a pool of 32 workers has 64 output streams), and a
// line longer than that is gathered in a buffer of its own, dropped afterwards.
const (
	maxLine = 64 << 10
	readBuf = 4 << 10
)

// reportLines is how many of a worker's last lines a spawn report keeps.
const reportLines = 20

// Stdout and Stderr are tender's standard output and error, for its logs and its workers'
// output. They write with write(2) itself: a write through an *os.File of fd 1 or 2 (os.Stdout,
// os.Stderr) to a pipe nobody reads any more makes the Go runtime raise SIGPIPE, which kills
// tender unless os/signal catches SIGPIPE (and then tender would forward its own SIGPIPE to the
// apps). Here the write fails with EPIPE, and tender's signal handler drops the kernel's
// SIGPIPE as tender's own (reaper.Signals).
var Stdout, Stderr io.Writer = stdWriter(1), stdWriter(2)

type stdWriter int

func (fd stdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(fd), p[n:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN): // non-blocking, shared with someone: wait for room
			_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, -1)
			continue
		case err != nil:
			return n, err
		case m == 0:
			return n, io.ErrShortWrite
		}
		n += m
	}
	return n, nil
}

// Output is where workers' output goes: tender's own stdout or stderr. Lines from different
// workers never interleave inside a line.
type Output struct {
	mu   sync.Mutex
	w    io.Writer
	hook func([]byte) // tests see each write
}

// NewOutput writes to w.
func NewOutput(w io.Writer) *Output { return &Output{w: w} }

func (o *Output) writeLine(line []byte) {
	o.mu.Lock()
	_, _ = o.w.Write(line)
	if o.hook != nil {
		o.hook(line)
	}
	o.mu.Unlock()
}

// Tail keeps the last lines of a worker's output for its spawn report.
type Tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *Tail) add(line []byte) {
	const keep = 1024 // of each line, for a report
	s := string(bytes.TrimRight(line[:min(len(line), keep)], "\n"))
	t.mu.Lock()
	if len(t.lines) == reportLines {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:reportLines-1]
	}
	t.lines = append(t.lines, s)
	t.mu.Unlock()
}

// Lines returns the kept lines, oldest first.
func (t *Tail) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.lines...)
}

// copyLines passes r on to out line by line, keeping the last lines in tail, until r ends. A
// last line without a newline is passed on as it is.
func copyLines(r io.Reader, out *Output, tail *Tail) {
	br := bufio.NewReaderSize(r, readBuf)
	var long []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) && len(long)+len(line) < maxLine {
			long = append(long, line...) // a long line: gather it whole
			continue
		}
		if len(long) > 0 {
			line = append(long, line...)
			long = nil
		}
		if len(line) > 0 {
			out.writeLine(line)
			tail.add(line)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}
