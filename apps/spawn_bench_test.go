package apps

import (
	"os"
	"syscall"
	"testing"

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
		attr := &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}}
		for b.Loop() {
			exits := make(chan reaper.Exit, 1)
			fork := func(*int32) (int, error) { return syscall.ForkExec("/bin/true", []string{"/bin/true"}, attr) }
			if _, err := r.Start(reaper.Child{Fork: fork, Exits: exits}); err != nil {
				b.Fatal(err)
			}
			<-exits
		}
	})
}
