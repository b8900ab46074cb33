package apps

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
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

// Output is where workers' output goes: tender's own stdout or stderr. Lines from different
// workers never interleave inside a line.
type Output struct {
	mu   sync.Mutex
	f    *os.File
	hook func([]byte) // tests see each write
}

// NewOutput writes to f.
func NewOutput(f *os.File) *Output { return &Output{f: f} }

func (o *Output) writeLine(line []byte) {
	o.mu.Lock()
	_, _ = o.f.Write(line)
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
