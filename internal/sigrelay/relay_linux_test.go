//go:build amd64 || arm64

package sigrelay

import (
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Catch relays a signal another process sends, not one tender sends itself, catches each
// signal once however often it is called, and Restore puts the Go runtime's handler back (for
// tender's subcommands).
func TestCatchRelayAndRestore(t *testing.T) {
	var before, now sigaction
	must(t, rtSigaction(syscall.SIGUSR1, nil, &before))
	fd, missed, err := Catch([]syscall.Signal{syscall.SIGUSR1})
	if err != nil || len(missed) != 0 {
		t.Fatalf("Catch: %v, missed %v", err, missed)
	}
	t.Cleanup(Restore)
	handler, _, _ := handlerAddrs()
	must(t, rtSigaction(syscall.SIGUSR1, nil, &now))
	if now.handler != handler {
		t.Fatalf("SIGUSR1's handler is %#x, want tender's, %#x", now.handler, handler)
	}
	if fd2, _, _ := Catch([]syscall.Signal{syscall.SIGUSR1}); fd2 != fd {
		t.Errorf("a second Catch opened another relay: %d, %d", fd2, fd)
	}

	must(t, syscall.Kill(syscall.Getpid(), syscall.SIGUSR1)) // tender's own: dropped
	if err := exec.Command("/bin/sh", "-c", "kill -USR1 "+strconv.Itoa(syscall.Getpid())).Run(); err != nil {
		t.Fatal(err)
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, int(5*time.Second/time.Millisecond)); n != 1 || err != nil {
		t.Fatalf("nothing relayed: %d %v", n, err)
	}
	time.Sleep(20 * time.Millisecond)
	var buf [8]byte
	n, err := unix.Read(fd, buf[:])
	if err != nil || n != 1 || buf[0] != byte(syscall.SIGUSR1) {
		t.Errorf("relayed %v (%v), want one SIGUSR1 (10): the one tender sent itself is dropped", buf[:max(n, 0)], err)
	}

	Restore()
	must(t, rtSigaction(syscall.SIGUSR1, nil, &now))
	if now != before {
		t.Errorf("after Restore SIGUSR1's action is %+v, want the runtime's %+v", now, before)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
