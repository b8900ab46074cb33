package balancer

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenderinit/tender/capabilities"
)

// through connects a client to server through an event loop and returns the client end and a
// count of released sessions.
func through(t *testing.T, server func(net.Conn), linger time.Duration) (net.Conn, *atomic.Int32) {
	t.Helper()
	released := &atomic.Int32{}
	return throughWith(t, server, linger, func(_, _ int64) { released.Add(1) }), released
}

// throughWith is through with the session's release function of the caller's.
func throughWith(t *testing.T, server func(net.Conn), linger time.Duration, release func(toWorker, toClient int64)) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err == nil {
			server(c)
		}
	}()
	a, b := tcpPair(t)
	worker, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := serveLoop(b, worker, linger, release, nil); err != nil {
		t.Fatal(err)
	}
	return a
}

// tcpPair is two ends of a loopback connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan net.Conn)
	go func() { c, _ := ln.Accept(); got <- c }()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return a, <-got
}

func waitReleased(t *testing.T, r *atomic.Int32) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); r.Load() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the session was released %d times, want once", r.Load())
		}
	}
}

// An echo through the loop, with a half-close: the client says it is done sending and still
// gets the whole answer.
// The release counts the bytes each way, for the access log.
func TestLoopEchoAndHalfClose(t *testing.T) {
	counts := make(chan [2]int64, 1)
	c := throughWith(t, func(w net.Conn) { io.Copy(w, w); w.Write([]byte("bye")); w.(*net.TCPConn).CloseWrite() }, time.Minute,
		func(toWorker, toClient int64) { counts <- [2]int64{toWorker, toClient} })
	msg := bytes.Repeat([]byte("hello "), 1000)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, append(msg, "bye"...)) {
		t.Fatalf("echo: %d bytes, %v", len(got), err)
	}
	c.Close()
	select {
	case n := <-counts:
		if n != [2]int64{int64(len(msg)), int64(len(msg)) + 3} {
			t.Errorf("released with %d bytes to the worker and %d to the client, want %d and %d", n[0], n[1], len(msg), len(msg)+3)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the session was not released")
	}
}

// 32 MB to a worker that reads slowly: the loop holds back (its buffers stay small) and loses
// nothing.
func TestLoopBackpressure(t *testing.T) {
	const size = 32 << 20
	sum := make(chan int64, 1)
	c, released := through(t, func(w net.Conn) {
		var n int64
		buf := make([]byte, 4096)
		for {
			m, err := w.Read(buf)
			n += int64(m)
			if err != nil {
				break
			}
			if n < 1<<20 {
				time.Sleep(time.Millisecond) // slow at first, so that the socket buffers fill
			}
		}
		sum <- n
		w.Close()
	}, time.Minute)
	go func() {
		c.Write(make([]byte, size))
		c.(*net.TCPConn).CloseWrite()
	}()
	if n := <-sum; n != size {
		t.Fatalf("the worker read %d bytes, want %d", n, size)
	}
	io.ReadAll(c)
	c.Close()
	waitReleased(t, released)
}

// When the worker closes, the client reads the end, and a client that never closes is cut
// after the linger.
func TestLoopWorkerClosesFirst(t *testing.T) {
	c, released := through(t, func(w net.Conn) { w.Write([]byte("bye")); w.Close() }, 200*time.Millisecond)
	got, _ := io.ReadAll(c) // the client keeps its writing half open
	if string(got) != "bye" {
		t.Fatalf("got %q", got)
	}
	waitReleased(t, released)
}

// A worker that resets once the first byte has come through: the session ends at once.
func TestLoopReset(t *testing.T) {
	c, released := through(t, func(w net.Conn) {
		w.Read(make([]byte, 1))
		w.(*net.TCPConn).SetLinger(0)
		w.Close()
	}, time.Minute)
	c.Write([]byte("x"))
	io.ReadAll(c)
	waitReleased(t, released)
}

// A session the loop cannot take (no descriptor left for its copy of the worker's, here a
// worker that is no socket) is left open for the copy by goroutines, not closed under it:
// tender short of descriptors reset the clients it could not hand over.
func TestLoopLeavesWhatItCannotTake(t *testing.T) {
	a, b := tcpPair(t)
	defer a.Close()
	w, tenderSide := net.Pipe()
	defer w.Close()
	if err := serveLoop(b, tenderSide, time.Second, func(_, _ int64) {}, nil); err == nil {
		t.Fatal("serveLoop took a worker that is no socket")
	}
	go pipe(b, tenderSide, time.Second)
	go func() {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(w, buf); err == nil {
			w.Write(bytes.ToUpper(buf))
		}
	}()
	a.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := a.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(a, got); err != nil || string(got) != "HELLO" {
		t.Fatalf("got %q, %v through the fallback copy", got, err)
	}
}

// A session the worker ended first, and then the client, is let go at once: the timer that
// gives the client time to finish is stopped, or it kept every such session in memory for
// TENDER_CLIENT_TIMEOUT (90 MB at 6,000 connections a second).
func TestLoopLetsGoOfAClosedSession(t *testing.T) {
	freed := make(chan struct{})
	released := &atomic.Int32{}
	var a net.Conn
	func() {
		token := new([16]byte) // reachable only through the session's release
		runtime.SetFinalizer(token, func(*[16]byte) { close(freed) })
		a = throughWith(t, func(w net.Conn) { w.Write([]byte("bye")); w.Close() }, time.Hour,
			func(_, _ int64) { _ = token; released.Add(1) })
	}()
	a.SetDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(a); err != nil || string(got) != "bye" {
		t.Fatalf("read %q, %v", got, err)
	}
	a.Close()
	waitReleased(t, released)
	for deadline := time.Now().Add(5 * time.Second); ; {
		runtime.GC()
		select {
		case <-freed:
			return
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the closed session is still held (by its linger timer)")
		}
	}
}

// The copy with goroutines (a tunnel, or a tcp session, when no event loop can be had) holds
// no descriptor beyond the two connections: io.Copy spliced through pipes that the Go runtime
// keeps in a pool, two more descriptors each way, open long after the copy ended.
func TestPipeHoldsNoDescriptorOfItsOwn(t *testing.T) {
	const sessions = 10
	fds := func() int {
		n, err := capabilities.OpenFds()
		if err != nil {
			t.Skip("no /proc/self/fd:", err)
		}
		return len(n)
	}
	type session struct{ client, worker net.Conn }
	var open []session
	for range sessions {
		client, front := tcpPair(t)
		back, worker := tcpPair(t)
		go func() {
			pipe(front, back, time.Second)
			front.Close()
			back.Close()
		}()
		open = append(open, session{client, worker})
	}
	before := fds()
	for _, s := range open {
		if _, err := s.client.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 4)
		if _, err := io.ReadFull(s.worker, got); err != nil || string(got) != "ping" {
			t.Fatalf("through the pipe: %q %v", got, err)
		}
	}
	if n := fds(); n > before {
		t.Errorf("%d sessions took %d descriptors more to copy", sessions, n-before)
	}
	for _, s := range open {
		s.client.Close()
		s.worker.Close()
	}
}
