package apps

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestParsePss(t *testing.T) {
	rollup := "557a7d224000-7fff86834000 ---p 00000000 00:00 0  [rollup]\nRss:  1776 kB\nPss:   305 kB\nPss_Dirty:  116 kB\n"
	if got, ok := parsePss([]byte(rollup)); !ok || got != 305<<10 {
		t.Errorf("parsePss = %d, %v; want %d", got, ok, 305<<10)
	}
	for _, bad := range []string{"", "Rss: 1 kB\n", "Pss: x kB\n", "Pss: 12 MB\n"} {
		if _, ok := parsePss([]byte(bad)); ok {
			t.Errorf("parsePss(%q) ok", bad)
		}
	}
}

// The memory of a tree counts the children: a shell whose child (this test binary again)
// holds 64 MiB weighs that much more than the shell.
func TestTreeMemoryCountsDescendants(t *testing.T) {
	if os.Getenv("TENDER_TEST_HOLD") == "1" {
		held := make([]byte, 64<<20)
		for i := range held {
			held[i] = 1
		}
		os.Stdout.WriteString("held\n")
		time.Sleep(time.Minute)
		_ = held[len(held)-1]
		return
	}
	cmd := exec.Command("/bin/sh", "-c", `"$0" -test.run='^TestTreeMemoryCountsDescendants$' & wait`, os.Args[0])
	cmd.Env = append(os.Environ(), "TENDER_TEST_HOLD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	buf := make([]byte, 8)
	if n, _ := out.Read(buf); !strings.HasPrefix(string(buf[:n]), "held") {
		t.Fatal("the child did not hold its memory")
	}
	own, tree := processMemory(cmd.Process.Pid), TreeMemory(cmd.Process.Pid)
	if tree < own+60<<20 {
		t.Errorf("the tree weighs %d bytes, the shell alone %d: the 64 MiB of its child are not counted", tree, own)
	}
}

func TestTreeMemoryOfNoProcess(t *testing.T) {
	if got := TreeMemory(1 << 30); got != 0 {
		t.Errorf("TreeMemory of no process = %d", got)
	}
}
