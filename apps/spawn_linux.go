package apps

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/capabilities"
	"github.com/tenderinit/tender/internal/nofile"
	"github.com/tenderinit/tender/reaper"
)

// Spawner starts app processes, every one with a clean start.
type Spawner struct {
	Reaper *reaper.Reaper
	// ListenFds is how many sockets, at fds 3 and up, every app receives (socket activation).
	ListenFds int
	// Base is what every app process gets: OOM score, user, capabilities, limits.
	Base Plan
	// Dir is the directory every app process starts in; "" leaves them in tender's.
	Dir string
}

// Spawn is one process to start.
type Spawn struct {
	Args  []string
	Env   []string
	Stdio [3]int // fds in tender that become the process's 0, 1 and 2
	// Foreground hands the terminal to the process's group (the single foreground child), when
	// tender's own group has it.
	Foreground bool
	// Birth, when set, gives the process's pid before Start returns, which may be never: a
	// child stopped or stuck before its exec (see reaper.Birth).
	Birth *reaper.Birth
}

// Start starts sp and sends its Exit to exits when it ends. When the clean start fails in the
// child, Start still returns the pid, since a process exists and its Exit will arrive, with a
// *StartError saying which step failed. Any other error means no process was started.
func (s *Spawner) Start(sp Spawn, exits chan<- reaper.Exit) (int, error) {
	l, err := s.prepare(sp)
	if err != nil {
		return 0, err
	}
	var errPipe [2]int
	if err := unix.Pipe2(errPipe[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("error pipe: %w", err)
	}
	l.errPipe = errPipe[1]
	l.closeRange = closeRangeWorks()
	pid, err := s.Reaper.Start(reaper.Child{
		Fork: func(tid *int32) (int, error) {
			// Every fd tender opens is close-on-exec (Go's os and net do so on Linux), and
			// those it inherited were marked at start-up; without close_range in the child
			// they are marked again here, for anything opened since by other means.
			if !l.closeRange {
				if err := capabilities.CloseOnExecFrom(3 + s.ListenFds); err != nil {
					return 0, fmt.Errorf("marking fds close-on-exec: %w", err)
				}
			}
			pid, errno := forkChild(l, tid)
			if errno != 0 {
				return 0, fmt.Errorf("fork: %w", errno)
			}
			return pid, nil
		},
		Exits: exits,
		Stops: sp.Foreground, // for job control on a terminal: Single.suspend
		Birth: sp.Birth,
	})
	unix.Close(errPipe[1])
	defer unix.Close(errPipe[0])
	if err != nil {
		return 0, err
	}
	// The pipe closes at the exec, or brings a report first.
	r, failed := readReport(errPipe[0])
	runtime.KeepAlive(l)
	if failed {
		return pid, l.explain(r, sp, s.Base)
	}
	return pid, nil
}

// closeRangeWorks reports whether this kernel has close_range with CLOSE_RANGE_CLOEXEC (5.11),
// asking once with an fd that is close-on-exec already.
var closeRangeWorks = sync.OnceValue(func() bool {
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.CloseRange(uint(fd), uint(fd), unix.CLOSE_RANGE_CLOEXEC) == nil
})

func readReport(fd int) (report, bool) {
	var r report
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&r)), unsafe.Sizeof(r))
	got := 0
	for got < len(buf) {
		n, err := unix.Read(fd, buf[got:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if n <= 0 || err != nil {
			break
		}
		got += n
	}
	return r, got == len(buf)
}

// prepare turns a spawn and the plan into what the child needs, in the shapes the kernel takes.
// Whatever can be checked here is: a failure here starts no process at all.
func (s *Spawner) prepare(sp Spawn) (*launch, error) {
	if len(sp.Args) == 0 {
		return nil, &StartError{Step: "exec", Msg: "no command", Code: ExitCannotExecute}
	}
	plan := s.Base
	l := &launch{stdio: sp.Stdio, listenFds: s.ListenFds, noNewPrv: plan.NoNewPrivileges}
	l.fg = sp.Foreground && ownsTerminal(sp.Stdio[0])
	var err error
	if l.argv, err = syscall.SlicePtrFromStrings(sp.Args); err != nil {
		return nil, &StartError{Step: "exec", Msg: fmt.Sprintf("bad argument: %v", err), Code: ExitCannotExecute}
	}
	env := sp.Env
	if s.ListenFds > 0 {
		// The child writes its pid into the room left here.
		l.listenPid = new([32]byte)
		copy(l.listenPid[:], "LISTEN_PID=")
		env = listenEnv(env, s.ListenFds)
	}
	if l.envv, err = syscall.SlicePtrFromStrings(env); err != nil {
		return nil, &StartError{Step: "exec", Msg: fmt.Sprintf("bad environment: %v", err), Code: ExitCannotExecute}
	}
	if l.listenPid != nil {
		l.envv = append(l.envv[:len(l.envv)-1], &l.listenPid[0], nil)
	}
	l.argv0, l.envv0 = &l.argv[0], &l.envv[0]
	for _, p := range candidates(sp.Args[0], pathOf(env)) {
		b, err := syscall.BytePtrFromString(p)
		if err != nil {
			return nil, &StartError{Step: "exec", Msg: fmt.Sprintf("bad command %q: %v", p, err), Code: ExitCannotExecute}
		}
		l.paths = append(l.paths, b)
	}
	l.shArgv = make([]uintptr, 0, len(l.argv)+1)
	l.shArgv = append(l.shArgv, uintptr(unsafe.Pointer(binSh)), 0)
	for _, a := range l.argv[1:] {
		l.shArgv = append(l.shArgv, uintptr(unsafe.Pointer(a)))
	}

	if s.Dir != "" {
		if l.dir, err = syscall.BytePtrFromString(s.Dir); err != nil {
			return nil, &StartError{Step: "change directory", Msg: fmt.Sprintf("bad directory %q: %v", s.Dir, err), Code: ExitCannotExecute}
		}
	}
	if plan.OOMScoreAdj != nil {
		// At most "-1000\n": config and Resolve keep scores in -1000..1000.
		l.oomLen = copy(l.oom[:], strconv.Itoa(*plan.OOMScoreAdj)+"\n")
	}
	if l.rlimits, err = rlimits(plan.Rlimits); err != nil {
		return nil, err
	}
	if plan.Capabilities != nil {
		if err := l.planCaps(plan.Capabilities); err != nil {
			return nil, err
		}
	}
	if u := plan.User; u != nil {
		l.user = &ids{groups: u.AdditionalGids, gid: uintptr(u.GID), uid: uintptr(u.UID), umask: -1}
		// The groups tender has already are not set again: setgroups needs CAP_SETGID even
		// then, which a tender running as the app's own user does not have.
		l.user.sameGroups = sameGroups(u.AdditionalGids)
		if u.Umask != nil {
			l.user.umask = int(*u.Umask)
		}
		// The kernel empties the permitted, effective and ambient sets of a process that
		// leaves uid 0, but not the inheritable one: a full one (as older Docker gave) would
		// give its capabilities back on the exec of a program with file capabilities
		// (CVE-2022-24769). A non-root app without TENDER_APP_CAPS gets every set empty.
		if u.UID != 0 && l.caps == nil {
			l.caps = &capSets{header: unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}}
		}
	}
	return l, nil
}

// sameGroups reports whether gids are this process's supplementary groups, in any order.
func sameGroups(gids []uint32) bool {
	own, err := unix.Getgroups()
	if err != nil || len(own) != len(gids) {
		return false
	}
	for _, g := range gids {
		if !slices.Contains(own, int(g)) {
			return false
		}
	}
	return true
}

// rlimits are the plan's limits, and RLIMIT_NOFILE back to what tender was started with where
// the plan does not set it and the Go runtime raised it, as os/exec would.
func rlimits(want []specs.POSIXRlimit) ([]rlimitSet, error) {
	var out []rlimitSet
	nofileSet := false
	for _, rl := range want {
		res, ok := rlimitResources[rl.Type]
		if !ok {
			return nil, &StartError{Step: "set " + rl.Type, Msg: "unknown resource", Code: ExitCannotExecute}
		}
		nofileSet = nofileSet || res == unix.RLIMIT_NOFILE
		out = append(out, rlimitSet{res, unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}})
	}
	var cur unix.Rlimit
	orig, ok := nofile.AtStart()
	// The runtime raises the soft limit to one below the hard one; any other value means
	// somebody set it since, and it stands.
	if !nofileSet && ok && unix.Getrlimit(unix.RLIMIT_NOFILE, &cur) == nil && cur.Cur == cur.Max-1 && orig.Cur < cur.Cur {
		out = append(out, rlimitSet{unix.RLIMIT_NOFILE, unix.Rlimit{Cur: orig.Cur, Max: cur.Max}})
	}
	return out, nil
}

var rlimitResources = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE,
	"RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC,
	"RLIMIT_RSS": unix.RLIMIT_RSS, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME,
	"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING, "RLIMIT_STACK": unix.RLIMIT_STACK,
}

// planCaps checks that tender can give what is asked (a process can only keep capabilities it
// has) and turns the names into the bounding set, the capset data and the ambient list.
func (l *launch) planCaps(want *specs.LinuxCapabilities) error {
	fail := func(msg string) error {
		return &StartError{Step: "read capabilities", Msg: msg, Code: ExitCannotExecute}
	}
	var own [2]unix.CapUserData
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	if err := unix.Capget(&hdr, &own[0]); err != nil {
		return fail(err.Error())
	}
	c := &capSets{header: hdr}
	set := func(names []string, bit func(capability.Cap)) error {
		for _, name := range names {
			cp, ok := capabilities.CapByName(name)
			if !ok || cp >= 64 {
				return fail("unknown capability " + name)
			}
			bit(cp)
		}
		return nil
	}
	on := func(words *[2]uint32, cp capability.Cap) { words[cp/32] |= 1 << (cp % 32) }
	var eff, prm, inh [2]uint32
	var bounding [64]bool
	err := errors.Join(
		set(want.Effective, func(cp capability.Cap) { on(&eff, cp) }),
		set(want.Permitted, func(cp capability.Cap) { on(&prm, cp) }),
		set(want.Inheritable, func(cp capability.Cap) { on(&inh, cp) }),
		set(want.Ambient, func(cp capability.Cap) { c.ambient = append(c.ambient, uintptr(cp)) }),
		set(want.Bounding, func(cp capability.Cap) { bounding[cp] = true }),
	)
	if err != nil {
		return err
	}
	for i := range prm {
		if missing := prm[i] &^ own[i].Permitted; missing != 0 {
			cp := capability.Cap(32*i + bits.TrailingZeros32(missing))
			return fail(capabilities.CapName(cp) + " cannot be kept: tender itself does not have it")
		}
	}
	for i := range c.data {
		c.data[i] = unix.CapUserData{Effective: eff[i], Permitted: prm[i], Inheritable: inh[i]}
	}
	last, err := capability.LastCap()
	if err != nil {
		return fail(err.Error())
	}
	l.caps, l.bounding, l.lastCap = c, &bounding, int(last)
	return nil
}

// stepNames name the steps of the clean start in reports.
var stepNames = map[uint32]string{
	stepStdio:      "set up stdio",
	stepGroup:      "new process group",
	stepDir:        "change directory",
	stepOOM:        "set oom_score_adj",
	stepRlimit:     "set rlimit",
	stepBounding:   "drop bounding capabilities",
	stepUser:       "change user",
	stepCaps:       "set capabilities",
	stepNoNewPrivs: "set no_new_privs",
	stepSignals:    "reset signals",
	stepFds:        "close file descriptors",
	stepExec:       "exec",
}

// explain turns a child's report into the error tender logs.
func (l *launch) explain(r report, sp Spawn, plan Plan) *StartError {
	errno := syscall.Errno(r.errno)
	e := &StartError{Step: stepNames[r.step], Msg: errno.Error(), Code: ExitCannotExecute}
	denied := errno == syscall.EPERM || errno == syscall.EACCES
	switch r.step {
	case stepDir:
		e.Msg = fmt.Sprintf("%s: %v", unix.BytePtrToString(l.dir), errno)
	case stepOOM:
		switch {
		case r.index == 1:
			e.Msg = fmt.Sprintf("wrote %s but read back %q", l.oomValue(), bytes.TrimRight(r.detail[:], "\x00"))
		case denied:
			e.Msg = fmt.Sprintf("the kernel refused %s: it is below this container's minimum and CAP_SYS_RESOURCE is missing", l.oomValue())
		}
	case stepRlimit:
		if i := int(r.index); i >= 0 && i < len(l.rlimits) {
			rl := l.rlimits[i]
			e.Step = "set " + rlimitName(rl.resource)
			e.Msg = fmt.Sprintf("%d:%d: %v", rl.lim.Cur, rl.lim.Max, errno)
			if denied {
				e.Msg += " (raising a hard limit needs CAP_SYS_RESOURCE)"
			}
		}
	case stepBounding:
		e.Msg = fmt.Sprintf("%s: %v", capabilities.CapName(capability.Cap(r.index)), errno)
		if denied {
			e.Msg = capabilities.CapName(capability.Cap(r.index)) + " is still in the bounding set (dropping needs CAP_SETPCAP)"
		}
	case stepUser:
		u := plan.User
		switch r.index {
		case 0:
			e.Msg = fmt.Sprintf("setgroups %v: %v", u.AdditionalGids, errno)
		case 1:
			e.Msg = fmt.Sprintf("setgid %d: %v", u.GID, errno)
		case 2:
			e.Msg = fmt.Sprintf("setuid %d: %v", u.UID, errno)
		default:
			e.Msg = fmt.Sprintf("keepcaps: %v", errno)
		}
	case stepCaps:
		if r.index >= 0 {
			e.Msg = fmt.Sprintf("ambient %s: %v", capabilities.CapName(capability.Cap(r.index)), errno)
		}
	case stepExec:
		name := sp.Args[0]
		path := name
		if i := int(r.index); i >= 0 && i < len(l.paths) {
			path = unix.BytePtrToString(l.paths[i])
		}
		switch {
		case name == "":
			e.Msg = "the command is an empty string"
		case errno == syscall.ENOENT && !strings.Contains(name, "/"):
			e.Msg = fmt.Sprintf("%s: not found in PATH=%s", name, pathOf(sp.Env))
		case errno == syscall.EACCES:
			e.Msg = path + ": permission denied"
		default:
			e.Msg = fmt.Sprintf("%s: %v", path, errno)
		}
		if errno == syscall.ENOENT {
			e.Code = ExitNotFound
		}
	}
	return e
}

// oomValue is the score the child writes, for messages.
func (l *launch) oomValue() string { return string(l.oom[:max(l.oomLen-1, 0)]) }

func rlimitName(res int) string {
	for name, r := range rlimitResources {
		if r == res {
			return name
		}
	}
	return "rlimit " + strconv.Itoa(res)
}

// binSh runs scripts without "#!".
var binSh = &[]byte("/bin/sh\x00")[0]

// candidates are the paths execvp would try for name: name itself if it has a slash (or is
// empty, which is not found), else name in each directory of path.
func candidates(name, path string) []string {
	if name == "" || strings.Contains(name, "/") {
		return []string{name}
	}
	var out []string
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		out = append(out, dir+"/"+name)
	}
	return out
}

// listenEnv is env for an app given n sockets by socket activation: without LISTEN_PID (the
// child adds its own), and with LISTEN_FDS and LISTEN_FDNAMES for the n that really came,
// which may be fewer than announced to tender.
func listenEnv(env []string, n int) []string {
	names, hasNames := "", false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "LISTEN_FDNAMES="); ok {
			names, hasNames = v, true
		}
	}
	env = append(withoutEnv(env, "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"), "LISTEN_FDS="+strconv.Itoa(n))
	if hasNames {
		if parts := strings.Split(names, ":"); len(parts) > n {
			names = strings.Join(parts[:n], ":")
		}
		env = append(env, "LISTEN_FDNAMES="+names)
	}
	return env
}

// ownsTerminal reports whether fd is a terminal whose foreground process group is tender's:
// only then is the terminal tender's to hand to the app. A tender started in the background
// (`tender -- app &` in an interactive shell) leaves it to the shell, which reads from it.
func ownsTerminal(fd int) bool {
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// reclaimTerminal takes the terminal back for tender's own group when the app's group, pgid,
// has it still after the app ended, as a shell does when a job ends: the next app (a restart)
// gets it from tender, and a shell that started tender without job control finds it back.
func reclaimTerminal(pgid int) {
	if fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP); err == nil && fg == pgid {
		withoutTTOU(func() { _ = unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, unix.Getpgrp()) })
	}
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
