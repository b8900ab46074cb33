package capabilities

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Socket activation counts only the fds that were passed. A helper process (this test binary
// again) gets one file at fd 3 and LISTEN_FDS=3; fd 4 is a close-on-exec file of its own, as the
// Go runtime and tender open theirs: one socket, not two or three.
func TestSocketActivationCountsOnlyPassedFds(t *testing.T) {
	if os.Getenv("TENDER_TEST_LISTEN") == "1" {
		// fd 4 is the runtime's already, or this file takes it.
		if _, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			panic(err)
		}
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
		os.Stdout.WriteString("sockets " + strconv.Itoa(SocketActivation()) + "\n")
		return
	}
	passed, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer passed.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSocketActivationCountsOnlyPassedFds$")
	cmd.Env = append(os.Environ(), "TENDER_TEST_LISTEN=1", "LISTEN_FDS=3")
	cmd.ExtraFiles = []*os.File{passed} // fd 3
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	if !strings.Contains(string(out), "sockets 1\n") {
		t.Errorf("helper said %q, want sockets 1", out)
	}
}
