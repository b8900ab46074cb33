package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// On SIGTERM the demo finishes the requests in flight before it exits. It used to return from
// main as soon as ListenAndServe did, which Shutdown makes it do at once: a request held at
// that moment was cut off (under tini, on every docker stop).
func TestSigtermFinishesTheRequestsInFlight(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "demo")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the demo: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT="+port)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	base := "http://127.0.0.1:" + port
	waitUntil(t, "the demo to listen", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	answer := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/hold?ms=700")
		if err != nil {
			answer <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			answer <- err.Error()
			return
		}
		answer <- resp.Status + " " + string(b)
	}()
	waitUntil(t, "the held request to arrive", func() bool { return strings.HasPrefix(get(base+"/stats"), "inflight 1 ") })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-answer:
		if !strings.HasPrefix(got, "200 OK hello from worker") {
			t.Errorf("the request held at SIGTERM got %q, want its answer", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to the held request within 10s")
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("the demo exited with %v, want 0", waitErr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the demo did not exit within 10s of SIGTERM")
	}
}

// get returns the body of a GET, or "" when it fails.
func get(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	return line
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 10s waiting for %s", what)
		}
	}
}
