package apps

import (
	"io"
	"os"
	"strings"
	"testing"
)

// Lines are passed on whole, a line past maxLine in pieces that each end in a newline, and
// the last line too, unfinished as it was: every write ends a line, so that nothing else (another
// worker's output, tender's log) lands inside one.
func TestCopyLinesKeepsLinesWholeAndTheLastOnes(t *testing.T) {
	long := strings.Repeat("x", 20000) // longer than the read buffer
	huge := strings.Repeat("y", maxLine+10)
	var in strings.Builder
	for i := 0; i < 30; i++ {
		in.WriteString("line " + strings.Repeat("a", i) + "\n")
	}
	in.WriteString(long + "\n" + huge + "\nno newline at the end")

	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	out, tail := NewOutput(f), &Tail{}
	var writes []int
	out.hook = func(line []byte) { writes = append(writes, len(line)) }
	copyLines(strings.NewReader(in.String()), out, tail)
	f.Seek(0, 0)
	got, _ := io.ReadAll(f)
	want := strings.Replace(in.String(), huge, huge[:maxLine]+"\n"+huge[maxLine:], 1) + "\n"
	if string(got) != want {
		t.Fatalf("output: %d bytes in, %d out, want %d", in.Len(), len(got), len(want))
	}
	end := 0
	for i, n := range writes {
		if end += n; got[end-1] != '\n' {
			t.Fatalf("write %d (%d bytes) does not end a line", i, n)
		}
	}
	// 30 short lines, the long one whole, the huge one in pieces, the last line.
	if writes[30] != len(long)+1 {
		t.Errorf("a %d-byte line was written in pieces: %v", len(long)+1, writes[28:])
	}
	lines := tail.Lines()
	if len(lines) != reportLines || lines[len(lines)-1] != "no newline at the end" || len(lines[len(lines)-3]) != 1024 {
		t.Errorf("tail has %d lines ending %q", len(lines), lines[len(lines)-1])
	}
}
