package balancer

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
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

// copyChunked copies one chunked body from r to w. It checks every line as RFC 9112 7.1 says
// and writes it out afresh: each size in hex ending in CRLF, without the chunk extensions
// (which nothing needs), and the trailers as header lines. What goes out can be read one way
// only, whatever leniency of tender's the sender may have counted on (a bare LF, a bare CR).
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
		if err != nil {
			return nil, err
		}
		if len(line) < 2 || line[len(line)-2] != '\r' || !isFieldValue(line[:len(line)-2]) {
			return nil, errBadChunk // a bare LF, or a CR or other control character inside
		}
		return line, nil // checked, and ending in CRLF
	}
	var sizeLine [20]byte
	for {
		line, err := readLine()
		if err != nil {
			return err
		}
		size, ok := chunkSize(line[:len(line)-2])
		if !ok {
			return errBadChunk
		}
		out := strconv.AppendInt(sizeLine[:0], size, 16)
		if _, err := w.Write(append(out, "\r\n"...)); err != nil {
			return err
		}
		if size == 0 {
			return copyTrailers(w, readLine)
		}
		if _, err := copyN(w, r, size, before, flush); err != nil {
			return err
		}
		if line, err = readLine(); err != nil {
			return err
		}
		if len(line) != 2 {
			return errBadChunk
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
	}
}

// copyTrailers copies the trailer section after the last chunk, up to its empty line: header
// lines, each checked as one of a head, and no more than a head's worth of them.
func copyTrailers(w io.Writer, readLine func() ([]byte, error)) error {
	total := 0
	for {
		line, err := readLine()
		if err != nil {
			return err
		}
		if len(line) > 2 {
			colon := bytes.IndexByte(line, ':')
			if total += len(line); colon <= 0 || !isToken(line[:colon]) || total > maxHead {
				return errBadChunk
			}
		}
		if _, err := w.Write(line); err != nil || len(line) == 2 {
			return err
		}
	}
}

// chunkSize parses a chunk-size line: the size in hex, then nothing, or chunk extensions
// after optional whitespace and a semicolon.
func chunkSize(line []byte) (int64, bool) {
	var n int64
	digits := 0
	for ; digits < len(line); digits++ {
		c := line[digits]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			ext := trimOWS(line[digits:])
			return n, digits > 0 && len(ext) > 0 && ext[0] == ';'
		}
		if digits >= 15 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, digits > 0
}
