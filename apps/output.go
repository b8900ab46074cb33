package apps

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
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

// onTerminal says whether fd 1 and 2 are terminals, asked once.
var onTerminal = [3]func() bool{1: isTerminal(1), 2: isTerminal(2)}

func isTerminal(fd int) func() bool {
	return sync.OnceValue(func() bool {
		_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		return err == nil
	})
}

// Write writes p whole. On a terminal it does so with SIGTTOU blocked in the writing thread:
// once tender has handed the terminal to its app, tender's process group is in the background,
// and with `stty tostop` the kernel answers its write with a SIGTTOU to that group and tries the
// write again when it runs on. tender catches SIGTTOU (to forward it), so it would forward it
// and try again forever, spinning, with the app stopped. A writer that blocks SIGTTOU is let
// through, as tini is, which ignores it.
func (fd stdWriter) Write(p []byte) (n int, err error) {
	if onTerminal[fd]() {
		withoutTTOU(func() { n, err = fd.write(p) })
		return n, err
	}
	return fd.write(p)
}

// withoutTTOU runs fn with SIGTTOU blocked in its thread: the kernel then lets a process in a
// background group write to its terminal and set its foreground group, rather than send
// SIGTTOU and have the call tried again.
func withoutTTOU(fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ttou, old unix.Sigset_t
	ttou.Val[(unix.SIGTTOU-1)/64] |= 1 << ((unix.SIGTTOU - 1) % 64)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &ttou, &old); err == nil {
		defer func() { _ = unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil) }()
	}
	fn()
}

func (fd stdWriter) write(p []byte) (int, error) {
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

// copyLines passes r on to out line by line, each labelled by label unless it is nil, keeping
// the last lines in tail, until r ends. A last line without a newline is ended with one.
func copyLines(r io.Reader, out *Output, tail *Tail, label *lineLabel) {
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
		if n := len(line); n > 0 && line[n-1] != '\n' {
			// A piece of a line past maxLine, or the last line, unfinished: it ends here, so that
			// nothing else is written on the same line (another worker's, tender's log).
			line = append(line[:n:n], '\n')
		}
		if len(line) > 0 {
			if label != nil {
				out.writeLine(label.apply(line))
			} else {
				out.writeLine(line)
			}
			tail.add(line)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}
