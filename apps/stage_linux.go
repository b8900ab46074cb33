package apps

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/capabilities"
	"github.com/tenderinit/tender/reaper"
)

// Exit statuses of a stage that could not start the app, as a shell reports them.
const (
	ExitNotFound      = 127
	ExitCannotExecute = 126
)

// RunStage is the clean-start stage: tender re-executed in a hidden mode (argv: self, StageArg,
// the number of passed sockets) inside the process that is about to become the app. It reads
// its plan from a pipe, prepares the process and execs the app, or reports the step that
// failed on the error pipe and exits without running any of the app's code. It never returns.
//
// The fds it starts with: 0-2, the passed sockets from 3 on, then the error pipe, then the
// plan pipe.
func RunStage(args []string) {
	// Capabilities and the signal mask belong to a thread, and execve keeps those of the thread
	// that calls it: every step below must run on this one thread.
	runtime.LockOSThread()

	listenFds := 0
	if len(args) > 2 {
		listenFds, _ = strconv.Atoi(args[2])
	}
	errPipe, planPipe := 3+listenFds, 4+listenFds
	fail := func(step string, err error, code int) {
		_, _ = unix.Write(errPipe, []byte(step+"\x00"+err.Error()))
		os.Exit(code)
	}
	// Until the exec succeeds the error pipe stays open, and the exec closes it: tender reads
	// either a failure or end-of-file.
	_, _ = unix.FcntlInt(uintptr(errPipe), unix.F_SETFD, unix.FD_CLOEXEC)
	encoded, err := readPlan(planPipe)
	if err != nil {
		fail("read plan", err, ExitCannotExecute)
	}
	plan, err := decodePlan(encoded)
	if err != nil {
		fail("read plan", err, ExitCannotExecute)
	}

	if err := prepare(plan); err != nil {
		var se *StageError
		errors.As(err, &se)
		fail(se.Step, errors.New(se.Msg), ExitCannotExecute)
	}
	path, code, err := lookPath(plan.Args[0], pathOf(plan.Env))
	if err != nil {
		fail("find command", err, code)
	}
	err = unix.Exec(path, plan.Args, plan.Env)
	code = ExitCannotExecute
	if errors.Is(err, unix.ENOENT) {
		code = ExitNotFound
	}
	fail("exec "+path, err, code)
}

// readPlan reads the plan until tender closes the pipe. End-of-file with nothing read means
// tender went away before the app was meant to start.
func readPlan(fd int) ([]byte, error) {
	var plan []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		plan = append(plan, buf[:n]...)
	}
	unix.Close(fd)
	if len(plan) == 0 {
		return nil, errors.New("tender sent no plan")
	}
	return plan, nil
}

// prepare performs the clean start, in an order that matters.
func prepare(plan *Plan) error {
	step := func(name string, err error) error {
		if err == nil {
			return nil
		}
		return &StageError{Step: name, Msg: err.Error()}
	}

	// 1. oom_score_adj first: a score below the process's minimum needs CAP_SYS_RESOURCE,
	//    which the user change and the capability drop below may take away. The value is read
	//    back, so that the app never runs with a score other than the one asked for (tender's
	//    own protection is exactly what it must not inherit).
	if plan.OOMScoreAdj != nil {
		if err := step("set oom_score_adj", setOOMScoreAdj(*plan.OOMScoreAdj)); err != nil {
			return err
		}
	}

	// 2. Resource limits, for the same reason: raising a hard limit needs CAP_SYS_RESOURCE.
	//    syscall.Setrlimit rather than unix's: it also stops the Go runtime from restoring its
	//    start-up RLIMIT_NOFILE at exec.
	for _, rl := range plan.Rlimits {
		if err := step("set "+rl.Type, setRlimit(rl)); err != nil {
			return err
		}
	}

	// 3. The bounding set before the user change: dropping from it needs CAP_SETPCAP, which a
	//    change to a non-root uid clears.
	var caps capability.Capabilities
	if plan.Capabilities != nil {
		var err error
		if caps, err = loadCaps(plan.Capabilities); err != nil {
			return step("read capabilities", err)
		}
		if err := step("drop bounding capabilities", applyBounding(caps, plan.Capabilities.Bounding)); err != nil {
			return err
		}
	}

	// 4. The user: groups, then gid, then uid, because after setuid to a non-root user the
	//    process may no longer change its groups. KEEPCAPS keeps the permitted set across
	//    setuid so that step 5 can still grant the kept capabilities.
	if plan.User != nil {
		if err := step("change user", setUser(plan.User, caps != nil)); err != nil {
			return err
		}
	}

	// 5. The capability sets. Ambient too, since a non-root app keeps nothing else across exec.
	if caps != nil {
		if err := step("set capabilities", applySets(caps, plan.Capabilities)); err != nil {
			return err
		}
	}

	// 6. no_new_privs after the privileged steps it would not hinder anyway, and before exec,
	//    which is what it guards.
	if plan.NoNewPrivileges {
		if err := step("set no_new_privs", unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)); err != nil {
			return err
		}
	}

	// 7. The terminal's foreground group. The process is still in the background here, and
	//    tcsetpgrp from the background raises SIGTTOU unless it is blocked; step 8 unblocks it.
	if plan.Foreground {
		takeTerminal()
	}

	// 8. Signals last among the settings, so that nothing after them can block or ignore one
	//    again: every ignored signal back to its default (caught ones are reset by exec
	//    itself), and an empty mask on this thread, the one that calls execve.
	if err := step("reset signals", resetSignals()); err != nil {
		return err
	}

	// 9. File descriptors: everything above the stdio and the passed sockets is marked
	//    close-on-exec, including the error pipe, whose closing tells tender the exec worked.
	if plan.ListenFds > 0 {
		plan.Env = setEnv(plan.Env, "LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
	return step("close file descriptors", capabilities.CloseOnExecFrom(3+plan.ListenFds))
}

func setOOMScoreAdj(v int) error {
	err := capabilities.SetOOMScoreAdj(v)
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		return fmt.Errorf("the kernel refused %d: it is below this container's minimum and CAP_SYS_RESOURCE is missing", v)
	}
	return err
}

func setRlimit(rl specs.POSIXRlimit) error {
	res, ok := rlimitResources[rl.Type]
	if !ok {
		return fmt.Errorf("unknown resource %q", rl.Type)
	}
	return syscall.Setrlimit(res, &syscall.Rlimit{Cur: rl.Soft, Max: rl.Hard})
}

var rlimitResources = map[string]int{"RLIMIT_NOFILE": unix.RLIMIT_NOFILE}

func loadCaps(want *specs.LinuxCapabilities) (capability.Capabilities, error) {
	c, err := capability.NewPid2(0)
	if err != nil {
		return nil, err
	}
	if err := c.Load(); err != nil {
		return nil, err
	}
	for _, name := range want.Permitted {
		cp, err := capByName(name)
		if err != nil {
			return nil, err
		}
		if !c.Get(capability.PERMITTED, cp) {
			return nil, fmt.Errorf("%s cannot be kept: tender itself does not have it", name)
		}
	}
	return c, nil
}

func applyBounding(c capability.Capabilities, keep []string) error {
	c.Clear(capability.BOUNDS)
	if err := setCaps(c, capability.BOUNDING, keep); err != nil {
		return err
	}
	if err := c.Apply(capability.BOUNDS); err != nil {
		return err
	}
	// Apply skips the drop silently without CAP_SETPCAP: check what the kernel did.
	for _, cp := range capability.ListKnown() {
		if on, err := capability.GetBound(cp); err == nil && on && !c.Get(capability.BOUNDING, cp) {
			return fmt.Errorf("CAP_%s is still in the bounding set (dropping needs CAP_SETPCAP)", strings.ToUpper(cp.String()))
		}
	}
	return nil
}

func applySets(c capability.Capabilities, want *specs.LinuxCapabilities) error {
	c.Clear(capability.CAPS | capability.AMBS)
	for which, names := range map[capability.CapType][]string{
		capability.EFFECTIVE:   want.Effective,
		capability.PERMITTED:   want.Permitted,
		capability.INHERITABLE: want.Inheritable,
		capability.AMBIENT:     want.Ambient,
	} {
		if err := setCaps(c, which, names); err != nil {
			return err
		}
	}
	return c.Apply(capability.CAPS | capability.AMBS)
}

func setCaps(c capability.Capabilities, which capability.CapType, names []string) error {
	for _, name := range names {
		cp, err := capByName(name)
		if err != nil {
			return err
		}
		c.Set(which, cp)
	}
	return nil
}

func capByName(name string) (capability.Cap, error) {
	for _, cp := range capability.ListKnown() {
		if "CAP_"+strings.ToUpper(cp.String()) == name {
			return cp, nil
		}
	}
	return 0, fmt.Errorf("unknown capability %s", name)
}

func setUser(u *specs.User, keepCaps bool) error {
	if keepCaps {
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("keepcaps: %w", err)
		}
	}
	groups := make([]int, len(u.AdditionalGids))
	for i, g := range u.AdditionalGids {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups %v: %w", groups, err)
	}
	if err := syscall.Setgid(int(u.GID)); err != nil {
		return fmt.Errorf("setgid %d: %w", u.GID, err)
	}
	if err := syscall.Setuid(int(u.UID)); err != nil {
		return fmt.Errorf("setuid %d: %w", u.UID, err)
	}
	if u.Umask != nil {
		unix.Umask(int(*u.Umask))
	}
	if keepCaps {
		return unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0)
	}
	return nil
}

func takeTerminal() {
	var ttou, old unix.Sigset_t
	ttou.Val[(unix.SIGTTOU-1)/64] |= 1 << ((unix.SIGTTOU - 1) % 64)
	_ = unix.PthreadSigmask(unix.SIG_BLOCK, &ttou, &old)
	// No terminal (ENOTTY), or not ours: nothing to hand over.
	_ = unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, unix.Getpgrp())
	_ = unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
}

// resetSignals sets every ignored signal back to its default (exec resets the caught ones
// itself) and empties the signal mask of this thread.
func resetSignals() error {
	for sig := syscall.Signal(1); sig <= 64; sig++ {
		if sig == unix.SIGKILL || sig == unix.SIGSTOP {
			continue
		}
		if ignored, err := reaper.Ignored(sig); err != nil || !ignored {
			continue // not ignored, or a number this kernel does not have
		}
		if err := reaper.SetDefault(sig); err != nil {
			return fmt.Errorf("signal %d to default: %w", sig, err)
		}
	}
	var empty unix.Sigset_t
	return unix.PthreadSigmask(unix.SIG_SETMASK, &empty, nil)
}

// lookPath finds the command in the app's PATH as a shell would, telling "not found" (127) from
// "found but not executable" (126).
func lookPath(name, path string) (string, int, error) {
	if strings.Contains(name, "/") {
		return name, 0, nil
	}
	denied := ""
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		file := filepath.Join(dir, name)
		fi, err := os.Stat(file)
		if err != nil || fi.IsDir() {
			continue
		}
		if unix.Access(file, unix.X_OK) == nil {
			return file, 0, nil
		}
		if denied == "" {
			denied = file
		}
	}
	if denied != "" {
		return "", ExitCannotExecute, fmt.Errorf("%s: permission denied", denied)
	}
	return "", ExitNotFound, fmt.Errorf("%s: not found in PATH=%s", name, path)
}

// pathOf is PATH in env, or the default of execvp when there is none.
func pathOf(env []string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			return v
		}
	}
	return "/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin"
}

func setEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}
