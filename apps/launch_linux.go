package apps

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// launch is everything the child needs between fork and exec, prepared by tender beforehand
// as the kernel wants it: the child makes system calls and nothing else (see forkChild).
type launch struct {
	paths      []*byte // the candidates for the command, tried in order (a PATH search)
	argv, envv []*byte // nil-terminated
	// shArgv runs a candidate the kernel cannot execute (ENOEXEC: a script without "#!") with
	// /bin/sh, as execvp does: "/bin/sh", the candidate (set by the child), argv[1:], nil.
	// Addresses only, so that the child stores no pointer (no write barrier). head receives
	// the candidate's first bytes: a program (ELF, or a NUL there, as bash checks), of another
	// architecture say, is not given to the shell.
	shArgv []uintptr
	head   [80]byte
	// The env entry "LISTEN_PID=" with room for the child's pid, or nil. An array, so that the
	// child's writes into it need no bounds check (see forkChild1).
	listenPid *[32]byte
	// argv0 and envv0 are &argv[0] and &envv[0], taken before the fork.
	argv0, envv0 **byte

	// dir is the directory the app starts in, NUL-terminated, or nil to stay in tender's.
	dir       *byte
	stdio     [3]int // tender's fds that become 0, 1 and 2
	listenFds int    // sockets at 3 and up that stay open
	errPipe   int    // write end; close-on-exec, so the exec closes it
	// closeRange: the child marks its fds close-on-exec with close_range. Without it (Linux
	// before 5.11) tender marks its own just before the fork, and the child inherits them so.
	closeRange bool

	// oom is the value for /proc/self/oom_score_adj and a newline, as the kernel prints it back,
	// its first oomLen bytes; oomLen is 0 to leave the score alone.
	oom      [16]byte
	oomLen   int
	rlimits  []rlimitSet
	bounding *[64]bool // capabilities kept in the bounding set; nil leaves it
	lastCap  int
	user     *ids
	caps     *capSets
	noNewPrv bool
	fg       bool

	dfl       [4]uint64 // a struct sigaction with SIG_DFL, large enough for every architecture
	emptyMask uint64
	report    report
}

type rlimitSet struct {
	resource int
	lim      unix.Rlimit
}

type ids struct {
	groups     []uint32
	sameGroups bool // groups are tender's own: not set again
	gid, uid   uintptr
	umask      int // -1 leaves it
}

type capSets struct {
	header  unix.CapUserHeader
	data    [2]unix.CapUserData
	ambient []uintptr
}

// report is what a child that failed writes on the error pipe before it exits.
type report struct {
	step  uint32
	errno uint32
	index int32 // which rlimit, capability, group or command candidate; -1 for none
	// detail is what the step read, if anything: the oom_score_adj read back.
	detail [16]byte
}

// The steps of the clean start, in the order the child takes them.
const (
	stepGroup uint32 = iota + 1
	stepStdio
	stepDir
	stepOOM
	stepRlimit
	stepBounding
	stepUser
	stepCaps
	stepNoNewPrivs
	stepSignals
	stepFds
	stepExec
)

// oomPath is where the child writes its score, NUL-terminated for the kernel.
const oomPath = "/proc/self/oom_score_adj\x00"

// atFdcwd is AT_FDCWD (-100) as a system call argument.
const atFdcwd = ^uintptr(-unix.AT_FDCWD - 1)

//go:linkname beforeFork syscall.runtime_BeforeFork
func beforeFork()

//go:linkname afterFork syscall.runtime_AfterFork
func afterFork()

// entersyscall and exitsyscall tell the Go runtime that this goroutine is in a system call,
// as syscall.Syscall does: its thread gives its P up and counts as stopped for the garbage
// collector, however long it stays there.
//
//go:linkname entersyscall runtime.entersyscall
func entersyscall()

//go:linkname exitsyscall runtime.exitsyscall
func exitsyscall()

// forkChild starts a child that prepares itself by l and execs the app, or writes a report on
// the error pipe and exits. The kernel writes the child's pid to *tid before the child runs.
// It returns the child's pid in tender, once the child has exec'd or exited.
func forkChild(l *launch, tid *int32) (int, syscall.Errno) {
	pid, errno := forkChild1(l, tid)
	return int(pid), errno
}

// forkChild1 is the child's whole life, and tender's fork.
//
// Go code cannot run between fork and exec in general: the child is a copy of one thread of a
// multi-threaded runtime, whose locks other threads may have held. What package syscall's own
// fork does is safe, and so is this, which follows its rules: everything is prepared before
// the fork, and the child only makes raw system calls and writes plain values into l and its
// own locals, with no allocation, no call that could grow the stack (runtime_BeforeFork makes
// one crash at once), no write barrier, no bounds check that could panic and no return to the
// scheduler; TestForkChildCallsOnlyRawSystemCalls reads the compiled code to hold it so. With
// vfork the child
// also runs on this function's frame while tender waits: tender, once it runs again, must read
// nothing but vfork's results and return, which is why this is a function of its own.
//
// tender's thread waits in vfork until the child execs, which may be never: a child stopped
// before its exec, an exec stuck on a dead NFS or FUSE path. So the wait is a system call for
// the Go runtime (entersyscall): the thread gives its P up, and the garbage collector, which
// stops every goroutine not in a system call, does not wait for it (os/exec's vfork, which does
// not do this, freezes the whole program at its next collection). The parent's side ends the
// fork (afterFork, on this thread, whose signal mask it restores) before it leaves the system
// call, which may resume it on another thread.
//
// The child's steps, their order, and why:
//
//  1. A process group of its own, so that tender can signal the app and all it starts.
//  2. Stdio moved to 0, 1 and 2, and the directory tender was started in (tender itself left
//     it for /, so as not to keep a volume busy), before the user change, as the app would
//     have inherited it.
//  3. oom_score_adj first: a score below the process's minimum needs CAP_SYS_RESOURCE, which
//     the steps below may take away. tender's own protection is exactly what the app must not
//     inherit. (A vfork child's score is its own: the kernel does not share it with tender.)
//  4. Resource limits, for the same reason (raising a hard limit needs CAP_SYS_RESOURCE), and
//     RLIMIT_NOFILE back to what tender was started with (Go raised tender's own).
//  5. The bounding set before the user change: dropping from it needs CAP_SETPCAP, which a
//     change to a non-root uid clears.
//  6. The user: groups, then gid, then uid, because after setuid to a non-root user the
//     process may no longer change its groups. KEEPCAPS keeps the permitted set across setuid
//     so that step 7 can still grant the capabilities kept.
//  7. The capability sets, ambient too, since a non-root app keeps nothing else across exec.
//  8. no_new_privs, which guards the exec.
//  9. The terminal's foreground group (no SIGTTOU: every signal is blocked until step 11).
//  10. Every signal to its default disposition: the ones tender ignores would stay ignored
//     across exec, the caught ones are reset by it anyway.
//  11. Every fd above the stdio and the passed sockets close-on-exec (close_range; on kernels
//     without it tender marks its own before the fork), LISTEN_PID, an empty signal mask, and
//     exec, trying each candidate of the PATH search as execvp does, and a file without "#!"
//     with /bin/sh, unless it starts like a program (an ELF file of another architecture).
//
//go:noinline
//go:norace
//go:nocheckptr
func forkChild1(l *launch, tid *int32) (pid uintptr, errno syscall.Errno) {
	var (
		r1, nfd  uintptr
		err, e   syscall.Errno
		i, j     int
		denied   int32
		digits   [32]byte // a pid's digits, backwards
		nd       int
		failStep uint32
		failIdx  int32
		pgid     int32
	)
	// Locals, so that the compiler can prove their indexes in bounds: the child may call
	// nothing, not even a panic.
	paths, argv0, envv0, rlimits, sh, bounding := l.paths, l.argv0, l.envv0, l.rlimits, l.shArgv, l.bounding
	var ambient []uintptr
	if l.caps != nil {
		ambient = l.caps.ambient
	}

	beforeFork()
	entersyscall()
	pid, errno = vfork(tid)
	if errno != 0 || pid != 0 {
		afterFork()
		exitsyscall()
		return
	}

	// The child, with every signal blocked.
	failIdx = -1

	failStep = stepGroup
	if _, _, err = syscall.RawSyscall(syscall.SYS_SETPGID, 0, 0, 0); err != 0 {
		goto fail
	}

	// Stdio: a source below 3 in the wrong place is moved up first, so that no dup2 below
	// overwrites a source still to be used.
	failStep = stepStdio
	for i = 0; i < 3; i++ {
		if l.stdio[i] < 3 && l.stdio[i] != i {
			nfd, _, err = syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(l.stdio[i]), syscall.F_DUPFD_CLOEXEC, uintptr(3+l.listenFds))
			if err != 0 {
				goto fail
			}
			l.stdio[i] = int(nfd)
		}
	}
	for i = 0; i < 3; i++ {
		if l.stdio[i] == i {
			_, _, err = syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(i), syscall.F_SETFD, 0)
		} else {
			_, _, err = syscall.RawSyscall(syscall.SYS_DUP3, uintptr(l.stdio[i]), uintptr(i), 0)
		}
		if err != 0 {
			failIdx = int32(i)
			goto fail
		}
	}

	if l.dir != nil {
		failStep = stepDir
		if _, _, err = syscall.RawSyscall(syscall.SYS_CHDIR, uintptr(unsafe.Pointer(l.dir)), 0, 0); err != 0 {
			goto fail
		}
	}

	if l.oomLen > 0 {
		failStep = stepOOM
		nfd, _, err = syscall.RawSyscall6(syscall.SYS_OPENAT, atFdcwd, uintptr(unsafe.Pointer(unsafe.StringData(oomPath))), syscall.O_RDWR|syscall.O_CLOEXEC, 0, 0, 0)
		if err != 0 {
			goto fail
		}
		_, _, err = syscall.RawSyscall(syscall.SYS_WRITE, nfd, uintptr(unsafe.Pointer(&l.oom[0])), uintptr(l.oomLen-1))
		if err == 0 {
			// Read back: the kernel prints the value and a newline.
			failIdx = 1
			r1, _, err = syscall.RawSyscall6(syscall.SYS_PREAD64, nfd, uintptr(unsafe.Pointer(&l.report.detail[0])), uintptr(len(l.report.detail)), 0, 0, 0)
			if err == 0 && r1 != uintptr(l.oomLen) {
				err = syscall.EIO
			}
			for i = 0; i < len(l.oom); i++ {
				if i < l.oomLen && l.report.detail[i] != l.oom[i] {
					err = syscall.EIO
				}
			}
		}
		syscall.RawSyscall(syscall.SYS_CLOSE, nfd, 0, 0)
		if err != 0 {
			goto fail
		}
		failIdx = -1
	}

	failStep = stepRlimit
	for i = 0; i < len(rlimits); i++ {
		_, _, err = syscall.RawSyscall6(unix.SYS_PRLIMIT64, 0, uintptr(rlimits[i].resource), uintptr(unsafe.Pointer(&rlimits[i].lim)), 0, 0, 0)
		if err != 0 {
			failIdx = int32(i)
			goto fail
		}
	}

	if bounding != nil {
		failStep = stepBounding
		for i = 0; i < len(bounding); i++ {
			if i > l.lastCap || bounding[i] {
				continue
			}
			r1, _, err = syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_CAPBSET_READ, uintptr(i), 0, 0, 0, 0)
			if err == 0 && r1 == 1 {
				_, _, err = syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(i), 0, 0, 0, 0)
			}
			if err != 0 {
				failIdx = int32(i)
				goto fail
			}
		}
	}

	if l.user != nil {
		failStep = stepUser
		if l.caps != nil {
			if _, _, err = syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0, 0, 0, 0); err != 0 {
				goto fail
			}
		}
		failIdx = 0
		if l.user.sameGroups {
			err = 0
		} else if len(l.user.groups) == 0 {
			_, _, err = syscall.RawSyscall(sysSetgroups, 0, 0, 0)
		} else {
			_, _, err = syscall.RawSyscall(sysSetgroups, uintptr(len(l.user.groups)), uintptr(unsafe.Pointer(&l.user.groups[0])), 0)
		}
		if err != 0 {
			goto fail
		}
		failIdx = 1
		if _, _, err = syscall.RawSyscall(sysSetgid, l.user.gid, 0, 0); err != 0 {
			goto fail
		}
		failIdx = 2
		if _, _, err = syscall.RawSyscall(sysSetuid, l.user.uid, 0, 0); err != 0 {
			goto fail
		}
		failIdx = -1
		if l.user.umask >= 0 {
			syscall.RawSyscall(syscall.SYS_UMASK, uintptr(l.user.umask), 0, 0)
		}
	}

	if l.caps != nil {
		failStep = stepCaps
		if _, _, err = syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&l.caps.header)), uintptr(unsafe.Pointer(&l.caps.data[0])), 0); err != 0 {
			goto fail
		}
		if _, _, err = syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); err != 0 {
			goto fail
		}
		for i = 0; i < len(ambient); i++ {
			if _, _, err = syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, ambient[i], 0, 0, 0); err != 0 {
				failIdx = int32(ambient[i])
				goto fail
			}
		}
		if l.user != nil {
			syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0, 0, 0, 0, 0)
		}
	}

	if l.noNewPrv {
		failStep = stepNoNewPrivs
		if _, _, err = syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); err != 0 {
			goto fail
		}
	}

	if l.fg {
		// No terminal (ENOTTY), or not this session's: nothing to hand over.
		r1, _, _ = syscall.RawSyscall(syscall.SYS_GETPID, 0, 0, 0)
		pgid = int32(r1) // the pid is the process group: step 1
		syscall.RawSyscall(syscall.SYS_IOCTL, 0, syscall.TIOCSPGRP, uintptr(unsafe.Pointer(&pgid)))
	}

	failStep = stepSignals
	for i = 1; i <= 64; i++ {
		if i == int(syscall.SIGKILL) || i == int(syscall.SIGSTOP) {
			continue
		}
		// EINVAL: a number this kernel does not have.
		syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(i), uintptr(unsafe.Pointer(&l.dfl)), 0, 8, 0, 0)
	}

	if l.closeRange {
		failStep = stepFds
		if _, _, err = syscall.RawSyscall(unix.SYS_CLOSE_RANGE, uintptr(3+l.listenFds), ^uintptr(0), unix.CLOSE_RANGE_CLOEXEC); err != 0 {
			goto fail
		}
	}

	if l.listenPid != nil {
		r1, _, _ = syscall.RawSyscall(syscall.SYS_GETPID, 0, 0, 0)
		// At most 20 digits: the masks (arrays of 32) only let the compiler see it.
		for nd = 0; nd < 20 && (nd == 0 || r1 > 0); nd++ {
			digits[nd] = byte('0' + r1%10)
			r1 /= 10
		}
		for i = 0; i < nd; i++ {
			l.listenPid[(len("LISTEN_PID=")+i)&31] = digits[(nd-1-i)&31]
		}
		l.listenPid[(len("LISTEN_PID=")+nd)&31] = 0
	}

	failStep = stepSignals
	if _, _, err = syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&l.emptyMask)), 0, 8, 0, 0); err != 0 {
		goto fail
	}

	failStep, denied = stepExec, -1
	for i = 0; i < len(paths); i++ {
		_, _, err = syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(unsafe.Pointer(paths[i])), uintptr(unsafe.Pointer(argv0)), uintptr(unsafe.Pointer(envv0)))
		switch err {
		case syscall.ENOENT, syscall.ENOTDIR:
		case syscall.EACCES:
			if denied < 0 {
				denied = int32(i)
			}
		case syscall.ENOEXEC:
			failIdx = int32(i) // unless /bin/sh runs it, the candidate's ENOEXEC is the error
			if nfd, _, e = syscall.RawSyscall6(syscall.SYS_OPENAT, atFdcwd, uintptr(unsafe.Pointer(paths[i])), syscall.O_RDONLY|syscall.O_CLOEXEC, 0, 0, 0); e != 0 {
				goto fail
			}
			r1, _, e = syscall.RawSyscall(syscall.SYS_READ, nfd, uintptr(unsafe.Pointer(&l.head[0])), uintptr(len(l.head)))
			syscall.RawSyscall(syscall.SYS_CLOSE, nfd, 0, 0)
			if e != 0 || r1 >= 4 && l.head[0] == 0x7f && l.head[1] == 'E' && l.head[2] == 'L' && l.head[3] == 'F' {
				goto fail
			}
			for j = 0; j < int(r1) && j < len(l.head); j++ {
				if l.head[j] == 0 {
					goto fail
				}
			}
			if len(sh) < 2 {
				goto fail
			}
			sh[1] = uintptr(unsafe.Pointer(paths[i]))
			syscall.RawSyscall(syscall.SYS_EXECVE, sh[0], uintptr(unsafe.Pointer(&sh[0])), uintptr(unsafe.Pointer(envv0)))
			goto fail // no /bin/sh
		default:
			failIdx = int32(i)
			goto fail
		}
	}
	err, failIdx = syscall.ENOENT, int32(len(paths)-1)
	if denied >= 0 {
		err, failIdx = syscall.EACCES, denied
	}

fail:
	l.report.step, l.report.errno, l.report.index = failStep, uint32(err), failIdx
	syscall.RawSyscall(syscall.SYS_WRITE, uintptr(l.errPipe), uintptr(unsafe.Pointer(&l.report)), unsafe.Sizeof(l.report))
	for {
		r1 = ExitCannotExecute
		if failStep == stepExec && err == syscall.ENOENT {
			r1 = ExitNotFound
		}
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, r1, 0, 0)
	}
}
