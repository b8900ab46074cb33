package balancer

import (
	"bufio"
	"errors"
	"io"
)

var errBadChunk = errors.New("malformed chunked body")

// copyN copies n bytes from r to w straight out of r's buffer, without a buffer of its own.
// before, when set, runs before each read from the network (to set a deadline); flush, when
// set, runs whenever r has nothing more buffered, so that a slow stream is passed on as it
// comes rather than when a buffer fills.
func copyN(w io.Writer, r *bufio.Reader, n int64, before, flush func() error) (int64, error) {
	var done int64
	for done < n {
		if r.Buffered() == 0 {
			if flush != nil {
				if err := flush(); err != nil {
					return done, err
				}
			}
			if before != nil {
				if err := before(); err != nil {
					return done, err
				}
			}
			if _, err := r.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return done, err
			}
		}
		b, _ := r.Peek(int(min(int64(r.Buffered()), n-done)))
		m, err := w.Write(b)
		_, _ = r.Discard(m)
		done += int64(m)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// copyUntilEOF copies r to w until r ends: a body delimited by the closing of the connection.
func copyUntilEOF(w io.Writer, r *bufio.Reader, flush func() error) error {
	_, err := copyN(w, r, 1<<62, nil, flush)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

// copyChunked copies one chunked body from r to w as it is (sizes, extensions, trailers),
// parsing it only to find where it ends.
func copyChunked(w io.Writer, r *bufio.Reader, before, flush func() error) error {
	readLine := func() ([]byte, error) {
		if r.Buffered() == 0 {
			if flush != nil {
				if err := flush(); err != nil {
					return nil, err
				}
			}
			if before != nil {
				if err := before(); err != nil {
					return nil, err
				}
			}
		}
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errBadChunk
		}
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return line, err
	}
	for {
		line, err := readLine()
		if err != nil {
			return err
		}
		size, ok := chunkSize(trimEOL(line))
		if !ok {
			return errBadChunk
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		if size == 0 {
			for { // trailers, up to the empty line
				line, err := readLine()
				if err != nil {
					return err
				}
				if _, err := w.Write(line); err != nil {
					return err
				}
				if len(trimEOL(line)) == 0 {
					return nil
				}
			}
		}
		if _, err := copyN(w, r, size, before, flush); err != nil {
			return err
		}
		line, err = readLine()
		if err != nil {
			return err
		}
		if len(trimEOL(line)) != 0 {
			return errBadChunk
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
	}
}

// chunkSize parses the hex size of a chunk-size line, before any extension.
func chunkSize(line []byte) (int64, bool) {
	var n int64
	digits := 0
	for _, c := range line {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		case c == ';' || c == ' ' || c == '\t':
			return n, digits > 0
		default:
			return 0, false
		}
		if digits++; digits > 15 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, digits > 0
}
