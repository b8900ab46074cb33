package apps

import (
	"encoding/json"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
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
	copyLines(strings.NewReader(in.String()), out, tail, nil)
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

// With labels, each line says its process, the bars lined up across the pool's types, and a
// line cut in pieces is labelled piece by piece; in JSON each line is one object, whatever
// the line holds. Each write is still one whole line.
func TestCopyLinesLabelsEachLine(t *testing.T) {
	width := labelWidth([]TypeConfig{{Name: "release", Count: 1}, {Name: "web", Count: 12}, {Name: "worker", Count: 2}})
	if width != len("worker.1") {
		t.Fatalf("labelWidth = %d, want %d", width, len("worker.1"))
	}
	huge := strings.Repeat("z", maxLine+5)
	in := "hello\n" + huge + "\nlast, unfinished"
	for _, tc := range []struct {
		label *lineLabel
		want  []string
	}{
		{newLineLabel("web", 3, "stdout", width, false),
			[]string{"web.3    | hello", "web.3    | " + huge[:maxLine], "web.3    | " + huge[maxLine:], "web.3    | last, unfinished"}},
		{newLineLabel("worker", 1, "stderr", width, false),
			[]string{"worker.1 | hello", "worker.1 | " + huge[:maxLine], "worker.1 | " + huge[maxLine:], "worker.1 | last, unfinished"}},
	} {
		var got strings.Builder
		out := NewOutput(&got)
		var writes int
		out.hook = func(line []byte) {
			writes++
			if line[len(line)-1] != '\n' {
				t.Errorf("a write does not end a line: %q", line[max(len(line)-20, 0):])
			}
		}
		copyLines(strings.NewReader(in), out, &Tail{}, tc.label)
		if lines := strings.Split(strings.TrimSuffix(got.String(), "\n"), "\n"); !slices.Equal(lines, tc.want) || writes != len(tc.want) {
			t.Errorf("%s: %d writes of %d lines, want %d", tc.label.prefix, writes, len(lines), len(tc.want))
		}
	}

	var got strings.Builder
	odd := "a \"quoted\" <tag> & \\ tab\t and \xff not UTF-8"
	copyLines(strings.NewReader("first\n"+odd+"\n"), NewOutput(&got), &Tail{}, newLineLabel("clock", 0, "stderr", width, true))
	var lines []string
	for _, raw := range strings.Split(strings.TrimSuffix(got.String(), "\n"), "\n") {
		var r outputRecord
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			t.Fatalf("a line is not one JSON object: %q: %v", raw, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, r.Time); err != nil || r.Type != "clock" || r.ID != 0 || r.Stream != "stderr" {
			t.Errorf("record %+v: want a time, type clock, id 0, stream stderr (%v)", r, err)
		}
		lines = append(lines, r.Line)
	}
	if want := []string{"first", strings.ToValidUTF8(odd, "\uFFFD")}; !slices.Equal(lines, want) {
		t.Errorf("JSON lines %q, want %q", lines, want)
	}
}
