// Package control is tender's control socket, which `tender status`, `tender restart` and
// `tender scale` talk to, and the optional admin HTTP endpoint (/healthz, /metrics, /status).
//
// The socket is a unix socket of mode 0600 that answers only tender's own uid and root, checked
// with SO_PEERCRED. A request and its answer are one JSON line each.
package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/apps"
)

// Handler carries out control requests. typ is a process type, or "" for every type
// (restart) or for web or the only type (scale).
type Handler interface {
	Status() apps.Status
	Restart(typ string) error
	Scale(typ string, n int) error
}

// Request is what a client asks.
type Request struct {
	Cmd  string `json:"cmd"` // status, restart or scale
	N    int    `json:"n,omitempty"`
	Type string `json:"type,omitempty"` // the process type that restart or scale names
}

// Response is the answer.
type Response struct {
	OK     bool         `json:"ok"`
	Error  string       `json:"error,omitempty"`
	Status *apps.Status `json:"status,omitempty"`
}

// Candidates are the places tender puts its socket, in order: /run/tender, then
// $XDG_RUNTIME_DIR/tender, then /tmp/tender-<uid>. `tender status` looks in the same order.
func Candidates() []string {
	paths := []string{"/run/tender/control.sock"}
	if xdg := os.Getenv("XDG_RUNTIME_DIR"); xdg != "" {
		paths = append(paths, filepath.Join(xdg, "tender", "control.sock"))
	}
	return append(paths, fmt.Sprintf("/tmp/tender-%d/control.sock", os.Getuid()))
}

// Server serves the control socket.
type Server struct {
	Path string
	ln   *net.UnixListener
	h    Handler
	log  hclog.Logger
}

// Listen makes the control socket at path, or at the first of Candidates where it can be made
// when path is "".
func Listen(path string, h Handler, log hclog.Logger) (*Server, error) {
	paths := []string{path}
	if path == "" {
		paths = Candidates()
	}
	var errs placesTried
	for _, p := range paths {
		ln, err := listenAt(p)
		if err == nil {
			return &Server{Path: p, ln: ln, h: h, log: log}, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", p, err))
	}
	return nil, errs
}

// placesTried is why the socket could be made at none of the places tried. It reads as one
// line, where errors.Join's line per error spread tender's warning over five lines of log.
type placesTried []error

func (e placesTried) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e placesTried) Unwrap() []error { return e }

func listenAt(path string) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// A directory someone else owns (say a /tmp/tender-1000 made by another user) could hold
	// a socket of theirs: never use it.
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || (int(st.Uid) != os.Getuid() && st.Uid != 0) {
		return nil, fmt.Errorf("%s is not a directory owned by uid %d or root", dir, os.Getuid())
	}
	// Nor one where others may replace the socket: writable by them without the sticky bit.
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return nil, fmt.Errorf("%s is writable by others (mode %#o)", dir, st.Mode&0o7777)
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, errors.New("another tender answers there")
		}
		if err := os.Remove(path); err != nil { // left by a tender that is gone
			return nil, err
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// maxRequest bounds what tender reads of a request.
const maxRequest = 64 << 10

// Serve answers requests until Close.
func (s *Server) Serve() {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			return
		}
		go s.answer(c)
	}
}

// Close removes the socket.
func (s *Server) Close() { s.ln.Close() }

func (s *Server) answer(c *net.UnixConn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	enc := json.NewEncoder(c)
	// The request is read before the peer is judged, so that a refused client reads the
	// refusal rather than a broken pipe.
	var req Request
	decodeErr := json.NewDecoder(bufio.NewReader(io.LimitReader(c, maxRequest))).Decode(&req)
	if err := checkPeer(c); err != nil {
		s.log.Warn("refused a control request", "error", err)
		_ = enc.Encode(Response{Error: err.Error()})
		return
	}
	if decodeErr != nil {
		_ = enc.Encode(Response{Error: "bad request: " + decodeErr.Error()})
		return
	}
	_ = enc.Encode(s.do(req))
}

func (s *Server) do(req Request) Response {
	switch req.Cmd {
	case "status":
		st := s.h.Status()
		return Response{OK: true, Status: &st}
	case "restart":
		if err := s.h.Restart(req.Type); err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true}
	case "scale":
		if err := s.h.Scale(req.Type, req.N); err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true}
	}
	return Response{Error: fmt.Sprintf("unknown command %q: want status, restart or scale", req.Cmd)}
}

// checkPeer lets in tender's own uid and root only.
func checkPeer(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if credErr != nil {
		return credErr
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("permission denied: uid %d is neither tender's uid %d nor root", cred.Uid, os.Getuid())
	}
	return nil
}

// Call sends req to the tender whose socket is at path, or found by the rule of Candidates
// when path is "" (root also looks in every /tmp/tender-*).
func Call(path string, req Request) (Response, error) {
	c, err := dial(path)
	if err != nil {
		return Response{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	writeErr := json.NewEncoder(c).Encode(req)
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		if writeErr != nil {
			return Response{}, writeErr
		}
		return Response{}, fmt.Errorf("reading tender's answer: %w", err)
	}
	if !resp.OK {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

func dial(path string) (net.Conn, error) {
	paths := []string{path}
	if path == "" {
		paths = Candidates()
		if os.Getuid() == 0 {
			for _, o := range othersDirs() {
				paths = append(paths, filepath.Join(o.dir, "control.sock"))
			}
		}
	}
	var last error
	for _, p := range paths {
		c, err := net.DialTimeout("unix", p, time.Second)
		if err == nil {
			return c, nil
		}
		if errors.Is(err, syscall.EACCES) {
			if os.Getuid() == 0 {
				// Root is answered, but a root without CAP_DAC_OVERRIDE (a container that
				// dropped it) cannot connect to another user's socket of mode 0600.
				return nil, fmt.Errorf("%s: %w (root without CAP_DAC_OVERRIDE cannot reach another user's socket: run this command as %s)", p, err, ownerOf(p))
			}
			return nil, fmt.Errorf("%s: %w (the control socket answers only tender's uid and root)", p, err)
		}
		last = err
	}
	if path != "" {
		return nil, fmt.Errorf("no tender answers at %s: %w", path, last)
	}
	err := fmt.Errorf("no running tender found (looked at %v); set TENDER_CONTROL to its socket", paths)
	if others := othersDirs(); len(others) > 0 && os.Getuid() != 0 {
		var owners []string
		for _, o := range others {
			owners = append(owners, fmt.Sprintf("uid %d (%s)", o.uid, o.dir))
		}
		err = fmt.Errorf("%w, or run this command as the user of another tender: %s", err, strings.Join(owners, ", "))
	}
	return nil, err
}

// otherDir is a /tmp/tender-<uid> directory that is not the caller's.
type otherDir struct {
	dir string
	uid uint32
}

// othersDirs are the socket directories of other users' tenders in /tmp (/tmp/tender-<uid>,
// owned by that uid) that hold a socket, or may (a directory the caller cannot search), whose
// sockets answer only their owner and root.
func othersDirs() []otherDir {
	dirs, _ := filepath.Glob("/tmp/tender-*")
	var out []otherDir
	for _, dir := range dirs {
		var st, sock unix.Stat_t
		uid, err := strconv.ParseUint(strings.TrimPrefix(dir, "/tmp/tender-"), 10, 32)
		if err != nil || unix.Lstat(dir, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR || uint64(st.Uid) != uid || int(st.Uid) == os.Getuid() {
			continue
		}
		err = unix.Lstat(filepath.Join(dir, "control.sock"), &sock)
		if err == unix.EACCES || err == nil && sock.Mode&unix.S_IFMT == unix.S_IFSOCK {
			out = append(out, otherDir{dir, st.Uid})
		}
	}
	return out
}

// ownerOf names the user to be to reach the socket at path: its owner, or its directory's when
// the socket itself cannot be looked at, as "uid N (docker exec -u N)"; "its owner" when
// neither can.
func ownerOf(path string) string {
	var st unix.Stat_t
	if unix.Lstat(path, &st) != nil && unix.Lstat(filepath.Dir(path), &st) != nil {
		return "its owner"
	}
	return fmt.Sprintf("uid %d (docker exec -u %[1]d)", st.Uid)
}
