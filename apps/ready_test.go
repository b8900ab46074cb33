package apps

import (
	"net"
	"testing"
	"time"
)

// The HTTP probe reads the answer to its end: closing after its first byte made the kernel
// reset the connection under the worker, which then logged an error for every probe.
func TestHealthProbeReadsTheWholeAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	werr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			werr <- err
			return
		}
		defer c.Close()
		_, _ = c.Read(make([]byte, 512))
		for _, part := range []string{"HTTP/1.1 200 OK\r\n", "Allow: GET\r\n", "Content-Length: 0\r\n\r\n"} {
			if _, err := c.Write([]byte(part)); err != nil {
				werr <- err
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		werr <- nil
	}()
	if err := probeHealth(ln.Addr().(*net.TCPAddr).Port, true, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Errorf("the worker's answer failed: %v", err)
	}
}

// A worker of a type that serves no port is ready when it sends READY=1, running once it has
// stayed up for the settle time, and, once its type is known to send READY=1, waited for by it
// alone: never for a port.
func TestWaitRunning(t *testing.T) {
	closed := make(chan struct{})
	close(closed)
	never := make(chan struct{})
	for _, tc := range []struct {
		name       string
		sent, stop <-chan struct{}
		settle     time.Duration
		mustNotify bool
		want       string
	}{
		{"READY=1 before the settle time", closed, never, time.Hour, false, readyNotify},
		{"stayed up for the settle time", never, never, time.Millisecond, false, readyUptime},
		// stop comes 50 ms on (nil: see below), well past the settle time, which must not count.
		{"its type sends READY=1: the settle time does not count", never, nil, time.Millisecond, true, ""},
		{"its type sends READY=1, and it did", closed, never, time.Millisecond, true, readyNotify},
		{"gone before anything", never, closed, time.Hour, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stop := tc.stop
			if stop == nil {
				later := make(chan struct{})
				time.AfterFunc(50*time.Millisecond, func() { close(later) })
				stop = later
			}
			if got := waitRunning(stop, tc.sent, tc.settle, tc.mustNotify); got != tc.want {
				t.Errorf("waitRunning = %q, want %q", got, tc.want)
			}
		})
	}
}
