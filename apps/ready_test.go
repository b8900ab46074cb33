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
