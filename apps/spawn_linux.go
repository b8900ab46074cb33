package apps

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/reaper"
)

// Spawner starts app processes, every one through the clean-start stage.
type Spawner struct {
	Reaper *reaper.Reaper
	// Self is the program that runs the stage: tender itself.
	Self string
	// Base is the part of every plan that does not depend on the process: OOM score, user,
	// capabilities, limits, passed sockets.
	Base Plan
}

// SelfPath is the path tender re-executes to run the stage: /proc/self/exe, which works even
// when the binary was replaced or deleted, or where /proc is missing, the path tender was
// started as.
func SelfPath() (string, error) {
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		return "/proc/self/exe", nil
	}
	return os.Executable()
}

// Spawn is one process to start.
type Spawn struct {
	Args  []string
	Env   []string
	Stdio [3]int // fds in tender that become the process's 0, 1 and 2
	// Foreground hands the terminal to the process's group (the single foreground child).
	Foreground bool
}

// Start starts sp in a process group of its own and sends its Exit to exits when it ends.
// When the stage fails, Start still returns the pid, since a process exists and its Exit
// will arrive, with a *StageError saying which step failed. Any other error means no process
// was started.
func (s *Spawner) Start(sp Spawn, exits chan<- reaper.Exit) (int, error) {
	plan := s.Base
	plan.Args = sp.Args
	plan.Foreground = sp.Foreground
	encoded, err := plan.encode()
	if err != nil {
		return 0, err
	}

	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("error pipe: %w", err)
	}
	readEnd, writeEnd := p[0], p[1]
	defer unix.Close(readEnd)

	files := make([]uintptr, 0, plan.errFd()+1)
	for _, fd := range sp.Stdio {
		files = append(files, uintptr(fd))
	}
	for i := range plan.ListenFds {
		files = append(files, uintptr(3+i))
	}
	files = append(files, uintptr(writeEnd))
	attr := &syscall.ProcAttr{
		Env:   sp.Env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	argv := []string{"tender", StageArg, encoded}
	pid, err := s.Reaper.Start(func() (int, error) {
		return syscall.ForkExec(s.Self, argv, attr)
	}, exits)
	unix.Close(writeEnd)
	if err != nil {
		return 0, fmt.Errorf("starting the clean-start stage %s: %w", s.Self, err)
	}
	return pid, readStageError(readEnd)
}

// readStageError waits for the stage to exec the app (the pipe closes) or to report a failure
// ("step\x00message").
func readStageError(fd int) error {
	var msg []byte
	buf := make([]byte, 512)
	for {
		n, err := unix.Read(fd, buf)
		if n > 0 {
			msg = append(msg, buf[:n]...)
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if n <= 0 || err != nil {
			break
		}
	}
	if len(msg) == 0 {
		return nil
	}
	step, text, _ := bytes.Cut(msg, []byte{0})
	return &StageError{Step: string(step), Msg: string(text)}
}
