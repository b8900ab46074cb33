package capabilities

import (
	"errors"

	"golang.org/x/sys/unix"
)

// readProcFile reads a whole /proc, /sys or cgroup file. Such files never block, so this
// does without os.File, which would try to register each one with the runtime's poller: three
// system calls a file instead of eight, on tender's way to starting the app.
func readProcFile(path string) ([]byte, error) {
	fd, err := openRetry(path, unix.O_RDONLY)
	if err != nil {
		return nil, &pathError{"open", path, err}
	}
	defer unix.Close(fd)
	b := make([]byte, 0, 512)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &pathError{"read", path, err}
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
	}
}

// writeProcFile writes data to a /proc, /sys or cgroup file in one write, as the kernel wants.
func writeProcFile(path string, data []byte) error {
	fd, err := openRetry(path, unix.O_WRONLY)
	if err != nil {
		return &pathError{"open", path, err}
	}
	defer unix.Close(fd)
	for {
		_, err = unix.Write(fd, data)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return &pathError{"write", path, err}
	}
	return nil
}

func openRetry(path string, mode int) (int, error) {
	for {
		fd, err := unix.Open(path, mode|unix.O_CLOEXEC, 0)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

// pathError is os.PathError's text, with Unwrap to the errno for errors.Is.
type pathError struct {
	op, path string
	err      error
}

func (e *pathError) Error() string { return e.op + " " + e.path + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }
