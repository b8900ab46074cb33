package capabilities

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// closeRangeCloexec is CLOSE_RANGE_CLOEXEC from linux/close_range.h (Linux 5.11), which
// x/sys/unix does not name.
const closeRangeCloexec = 1 << 2

// CloseOnExecFrom marks every open fd >= first close-on-exec, so that no program exec'd
// later inherits it. Marking rather than closing leaves the Go runtime's own fds working.
// It uses close_range(2) and, on kernels older than 5.11, walks /proc/self/fd, or failing
// that every fd number up to RLIMIT_NOFILE.
func CloseOnExecFrom(first int) error {
	err := unix.CloseRange(uint(first), ^uint(0), closeRangeCloexec)
	if err == nil || !(errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL)) {
		return err
	}
	fds, err := OpenFds()
	if err != nil {
		var lim unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return err
		}
		for fd := first; uint64(fd) < min(lim.Cur, 1<<20); fd++ {
			_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
		return nil
	}
	for _, fd := range fds {
		if fd >= first {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && !errors.Is(err, unix.EBADF) {
				return err
			}
		}
	}
	return nil
}

// OpenFds lists this process's open fds from /proc/self/fd, without the one used to read it.
func OpenFds() ([]int, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	self := int(d.Fd())
	fds := make([]int, 0, len(names))
	for _, n := range names {
		if fd, err := strconv.Atoi(n); err == nil && fd != self {
			fds = append(fds, fd)
		}
	}
	return fds, nil
}

// InheritedFds lists the fds >= 3 that this process received from its parent: at start-up,
// those are the ones without close-on-exec (an fd marked close-on-exec does not survive the
// exec that started us, so any such fd was opened by the Go runtime itself).
func InheritedFds() []int {
	fds, err := OpenFds()
	if err != nil {
		return nil
	}
	var out []int
	for _, fd := range fds {
		if fd < 3 {
			continue
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			out = append(out, fd)
		}
	}
	return out
}

// SocketActivation returns how many sockets, at fds 3 and up, were passed to this process by
// socket activation (systemd's LISTEN_FDS, meant for us when LISTEN_PID is our pid). Only
// fds that were really passed count: open, and not close-on-exec (as in InheritedFds), so that
// a LISTEN_FDS larger than what came never takes a file of the Go runtime's or tender's own
// for a socket to pass on to the apps.
func SocketActivation() int {
	pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID"))
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if pid != os.Getpid() || n <= 0 {
		return 0
	}
	for i := range n {
		if flags, err := unix.FcntlInt(uintptr(3+i), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC != 0 {
			return i
		}
	}
	return n
}
