// An external test package: a test file of package nofile itself would make it import syscall,
// and so initialise after it.
package nofile_test

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tenderinit/tender/internal/nofile"
)

// AtStart is the limit the process was started with, not the one package syscall's init raised
// it to: this test binary, run again with a soft limit well below the hard one, says what it read.
func TestAtStartIsBeforeGosRaise(t *testing.T) {
	if os.Getenv("TENDER_TEST_NOFILE") == "1" {
		start, ok := nofile.AtStart()
		os.Stdout.WriteString(strconv.FormatBool(ok) + " " + strconv.FormatUint(start.Cur, 10) + " " + strconv.FormatUint(start.Max, 10) + "\n")
		return
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < 64 {
		t.Skipf("hard RLIMIT_NOFILE %d: no room below it", lim.Max)
	}
	// Lowered here, the limit is what the helper starts with (a Go program that sets
	// RLIMIT_NOFILE itself passes its own on, not the one it started with).
	soft := min(256, lim.Max/2)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: soft, Max: lim.Max}); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	cmd := exec.Command(os.Args[0], "-test.run=^TestAtStartIsBeforeGosRaise$")
	cmd.Env = append(os.Environ(), "TENDER_TEST_NOFILE=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	want := "true " + strconv.FormatUint(soft, 10) + " " + strconv.FormatUint(lim.Max, 10)
	if got, _, _ := strings.Cut(string(out), "\n"); got != want {
		t.Errorf("the helper read %q at start, want %q", got, want)
	}
}
