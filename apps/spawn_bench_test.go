package apps

import (
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/reaper"
)

// BenchmarkStart is the cost of one clean start of /bin/true, to its exit, against os/exec's
// fork (vfork) and exec with no clean start at all.
func BenchmarkStart(b *testing.B) {
	r := testReaper()
	b.Run("clean", func(b *testing.B) {
		s := &Spawner{Reaper: r}
		for b.Loop() {
			exits := make(chan reaper.Exit, 1)
			if _, err := s.Start(Spawn{Args: []string{"/bin/true"}, Env: os.Environ(), Stdio: [3]int{0, 1, 2}}, exits); err != nil {
				b.Fatal(err)
			}
			<-exits
		}
	})
	b.Run("forkexec", func(b *testing.B) {
		// The reaper reaps the child as an orphan (syscall.ForkExec cannot tell it the pid
		// before the child may exit); a pidfd says when it exits, whoever reaps it.
		attr := &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}}
		for b.Loop() {
			pid, err := syscall.ForkExec("/bin/true", []string{"/bin/true"}, attr)
			if err != nil {
				b.Fatal(err)
			}
			fd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				continue // gone already
			}
			_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
			unix.Close(fd)
		}
	})
}
