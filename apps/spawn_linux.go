package apps

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/reaper"
)

// Spawner starts app processes, every one through the clean-start stage.
type Spawner struct {
	Reaper *reaper.Reaper
	// Self is the program that runs the stage: tender itself.
	Self string
	// ListenFds is how many sockets, at fds 3 and up, every app receives (socket activation).
	ListenFds int
	// Base is the part of every plan that does not depend on the process: OOM score, user,
	// capabilities, limits.
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

// stageEnv is the environment of the stage itself, not the app's.
var stageEnv = []string{"GOMAXPROCS=1", "GOGC=off"}

// Spawn is one process to start.
type Spawn struct {
	Args  []string
	Env   []string
	Stdio [3]int // fds in tender that become the process's 0, 1 and 2
	// Foreground hands the terminal to the process's group (the single foreground child).
	Foreground bool
}

// Stage is a clean-start stage that has been forked and waits for its plan.
type Stage struct {
	Pid    int
	planW  int // tender's end of the pipe the plan goes through
	errR   int // tender's end of the pipe a failure comes back through
	closed bool
}

// Start starts sp and sends its Exit to exits when it ends. When the stage fails, Start still
// returns the pid, since a process exists and its Exit will arrive, with a *StageError
// saying which step failed. Any other error means no process was started.
func (s *Spawner) Start(sp Spawn, exits chan<- reaper.Exit) (int, error) {
	st, err := s.Fork(sp.Stdio, exits)
	if err != nil {
		return 0, err
	}
	return st.Pid, s.Exec(st, sp)
}

// Fork starts a stage with the given stdio in a process group of its own, without letting it
// go on to an app: the stage waits for its plan, which Exec sends. Forking early lets the
// stage's own start-up (a Go runtime's) overlap whatever tender still has to do before the app
// may run. The stage's Exit goes to exits.
func (s *Spawner) Fork(stdio [3]int, exits chan<- reaper.Exit) (*Stage, error) {
	var planP, errP [2]int
	if err := unix.Pipe2(planP[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("plan pipe: %w", err)
	}
	if err := unix.Pipe2(errP[:], unix.O_CLOEXEC); err != nil {
		unix.Close(planP[0])
		unix.Close(planP[1])
		return nil, fmt.Errorf("error pipe: %w", err)
	}
	// The stage's fds: stdio, the passed sockets, then the error pipe and the plan pipe.
	files := make([]uintptr, 0, 5+s.ListenFds)
	for _, fd := range stdio {
		files = append(files, uintptr(fd))
	}
	for i := range s.ListenFds {
		files = append(files, uintptr(3+i))
	}
	files = append(files, uintptr(errP[1]), uintptr(planP[0]))
	// The app's environment travels in the plan. The stage's own tells its Go runtime that it
	// is one thread that execs in a moment: no cgroup files read to size GOMAXPROCS at start,
	// no garbage collection.
	attr := &syscall.ProcAttr{Files: files, Env: stageEnv, Sys: &syscall.SysProcAttr{Setpgid: true}}
	argv := []string{"tender", StageArg, strconv.Itoa(s.ListenFds)}
	pid, err := s.Reaper.Start(func() (int, error) {
		return syscall.ForkExec(s.Self, argv, attr)
	}, exits)
	unix.Close(errP[1])
	unix.Close(planP[0])
	if err != nil {
		unix.Close(errP[0])
		unix.Close(planP[1])
		return nil, fmt.Errorf("starting the clean-start stage %s: %w", s.Self, err)
	}
	return &Stage{Pid: pid, planW: planP[1], errR: errP[0]}, nil
}

// Exec sends the stage the plan for sp and waits until it has exec'd the app (nil) or
// reported the step that failed (*StageError).
func (s *Spawner) Exec(st *Stage, sp Spawn) error {
	defer st.close()
	plan := s.Base
	plan.Args, plan.Env, plan.Foreground = sp.Args, sp.Env, sp.Foreground
	plan.ListenFds = s.ListenFds
	encoded, err := plan.encode()
	if err != nil {
		return err
	}
	if err := writeAll(st.planW, encoded); err != nil {
		// The stage is gone already; its exit status says why.
		return &StageError{Step: "send plan", Msg: err.Error()}
	}
	unix.Close(st.planW)
	st.planW = -1
	return readStageError(st.errR)
}

// Abandon closes the pipes of a stage that will never get a plan: it exits on end-of-file.
func (st *Stage) Abandon() { st.close() }

func (st *Stage) close() {
	if st.closed {
		return
	}
	st.closed = true
	if st.planW >= 0 {
		unix.Close(st.planW)
	}
	unix.Close(st.errR)
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// readStageError waits for the stage to exec the app (the pipe closes) or to report a failure
// ("step\x00message").
func readStageError(fd int) error {
	var msg []byte
	buf := make([]byte, 512)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if n <= 0 || err != nil {
			break
		}
		msg = append(msg, buf[:n]...)
	}
	if len(msg) == 0 {
		return nil
	}
	step, text, _ := bytes.Cut(msg, []byte{0})
	return &StageError{Step: string(step), Msg: string(text)}
}
