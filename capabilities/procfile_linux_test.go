package capabilities

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"testing"
)

func TestReadProcFile(t *testing.T) {
	// mountinfo is larger than the first buffer.
	for _, path := range []string{"/proc/self/mountinfo", "/proc/self/cgroup", "/proc/self/oom_score_adj"} {
		got, err := readProcFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(path)
		if !bytes.Equal(got, want) {
			t.Errorf("readProcFile(%s) = %d bytes, os.ReadFile %d", path, len(got), len(want))
		}
	}
	if _, err := readProcFile("/proc/self/no-such-file"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file gives %v, want fs.ErrNotExist", err)
	}
}
