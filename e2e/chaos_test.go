package e2e

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tenderinit/tender/apps"
)

// An operator's worst minute (issue 19), bounded: keep-alive GETs and POSTs through the http
// balancer over 4 workers, while every 0.5 s a worker is SIGKILLed, or tender gets SIGHUP (a
// rolling restart), SIGTTIN or SIGTTOU. A GET is idempotent and tender holds it whole: not one
// may fail, as long as tender can start a worker. A POST goes again only where no worker can
// have read it; one a worker may have read is a 502 that says so, and no POST is ever run
// twice. tender ends alive, with the descriptors it had.
func TestNoRequestFailsWhileWorkersDieAndRoll(t *testing.T) {
	const chaos = 15 * time.Second
	posts := filepath.Join(t.TempDir(), "posts")
	// The crash budget is another test's: here tender must always be able to start a worker.
	// The restart delay's cap bounds how long a request may wait for a replacement.
	addr := "127.0.0.1:" + freePort(t)
	f := &Front{Addr: addr, Pool: startPool(t, []string{"TENDER_LISTEN=" + addr, "TENDER_WORKERS=4",
		"TENDER_MAX_RESTARTS=0", "TENDER_RESTART_DELAY_MAX=1s", "TENDER_QUEUE_TIMEOUT=10s"},
		"--", bin.testapp, "serve", "-posts", posts)}
	f.waitFor("4 ready", 10*time.Second, nReady(4))
	tender := f.TenderPid()
	fds := len(openFds(t, tender))

	seed := uint64(time.Now().UnixNano())
	t.Logf("chaos seed %d", seed)
	stopLoad := startChaosLoad(addr, 32)
	actions := raiseChaos(t, f, rand.New(rand.NewPCG(seed, 0)), chaos)
	clients := stopLoad()

	gets, getsOK := 0, 0
	for _, c := range clients {
		if !c.post {
			gets += c.sent
			getsOK += len(c.ok)
			for _, e := range c.failed {
				t.Errorf("a GET failed: %s", e.text)
			}
		}
	}
	postsSent, postsOK, maybeRun, ranOf502 := checkPOSTs(t, clients, posts)
	t.Logf("%v; GETs: %d sent, %d answered 200; POSTs: %d sent, %d answered 200, %d answered 502 as maybe run (%d of them had run)",
		actions, gets, getsOK, postsSent, postsOK, maybeRun, ranOf502)
	if getsOK < 100 || postsOK < 100 {
		t.Errorf("only %d GETs and %d POSTs went through: a load that did not run proves nothing", getsOK, postsOK)
	}

	if f.Exited() {
		t.Fatal("tender did not survive")
	}
	if out, err := f.tenderCLI("scale", "4"); err != nil {
		t.Fatalf("tender scale 4: %v %s", err, out)
	}
	f.waitFor("4 ready, none draining", 20*time.Second, nReady(4))
	eventually(t, 10*time.Second, fmt.Sprintf("tender's fds back to %d", fds), func() bool {
		return len(openFds(t, tender)) <= fds
	})
	t.Logf("tender's fds: %d before, %d after; its RSS now %s", fds, len(openFds(t, tender)), procStatus(t, tender)["VmRSS"])
	f.Signal(syscall.SIGTERM)
	if code := f.Wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d after the chaos", code)
	}
}

// startChaosLoad starts n clients, half sending GETs and half POSTs; the function it returns
// stops them and gives their results.
func startChaosLoad(addr string, n int) func() []*chaosClient {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	clients := make([]*chaosClient, n)
	for i := range clients {
		clients[i] = &chaosClient{addr: addr, post: i%2 == 1, id: i << 32}
		wg.Add(1)
		go func() {
			defer wg.Done()
			clients[i].run(stop)
		}()
	}
	return func() []*chaosClient {
		close(stop)
		wg.Wait()
		return clients
	}
}

// raiseChaos does one thing every 0.5 s for d: SIGKILL to a worker, or SIGHUP, SIGTTIN or
// SIGTTOU to tender, picked at random. It counts what it did.
func raiseChaos(t *testing.T, f *Front, rng *rand.Rand, d time.Duration) map[string]int {
	done := map[string]int{}
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		switch rng.IntN(4) {
		case 0:
			if killAWorker(f, rng) {
				done["SIGKILL"]++
			}
		case 1:
			f.Signal(syscall.SIGHUP)
			done["SIGHUP"]++
		case 2:
			f.Signal(syscall.SIGTTIN)
			done["SIGTTIN"]++
		case 3:
			f.Signal(syscall.SIGTTOU)
			done["SIGTTOU"]++
		}
	}
	return done
}

// checkPOSTs tells the POSTs that failed apart: each must be a 502 for a worker that may have
// run it, none may have run twice (the workers append each body they read to the posts file),
// and each answered 200 ran once.
func checkPOSTs(t *testing.T, clients []*chaosClient, posts string) (sent, ok, maybeRun, ranOf502 int) {
	t.Helper()
	ran := map[string]int{}
	b, _ := os.ReadFile(posts)
	for _, id := range strings.Fields(string(b)) {
		ran[id]++
	}
	for id, n := range ran {
		if n > 1 {
			t.Errorf("POST %s ran %d times", id, n)
		}
	}
	for _, c := range clients {
		if !c.post {
			continue
		}
		sent += c.sent
		ok += len(c.ok)
		for _, id := range c.ok {
			if ran[id] != 1 {
				t.Errorf("POST %s was answered 200 and ran %d times", id, ran[id])
			}
		}
		for _, e := range c.failed {
			if e.status != 502 || !strings.Contains(e.text, mayHaveActed) {
				t.Errorf("a POST failed, and not for a worker that may have read it: %s", e.text)
				continue
			}
			maybeRun++
			ranOf502 += ran[e.id]
		}
	}
	return sent, ok, maybeRun, ranOf502
}

// mayHaveActed is what tender's 502 says of a request it did not send again because the worker
// may have acted on it.
const mayHaveActed = "may have acted on the request"

// chaosClient is one keep-alive connection of the load, as wrk's: requests one after another,
// a new connection when tender closes one. ok holds the ids of the requests answered 200.
type chaosClient struct {
	addr   string
	post   bool
	id     int
	sent   int
	ok     []string
	failed []chaosFailure
}

// chaosFailure is a request that failed: its id, the status (0 for no answer) and what came.
type chaosFailure struct {
	id     string
	status int
	text   string
}

func (c *chaosClient) run(stop <-chan struct{}) {
	var conn net.Conn
	var br *bufio.Reader
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		select {
		case <-stop:
			return
		default:
		}
		if conn == nil {
			var err error
			if conn, err = net.DialTimeout("tcp", c.addr, 5*time.Second); err != nil {
				c.failed = append(c.failed, chaosFailure{text: "connect: " + err.Error()})
				time.Sleep(100 * time.Millisecond)
				continue
			}
			br = bufio.NewReader(conn)
		}
		c.sent++
		c.id++
		id := strconv.Itoa(c.id)
		req := "GET / HTTP/1.1\r\nHost: t\r\n\r\n"
		if c.post {
			req = fmt.Sprintf("POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s", len(id), id)
		}
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		_, err := io.WriteString(conn, req)
		var resp *http.Response
		if err == nil {
			resp, err = http.ReadResponse(br, nil)
		}
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		switch {
		case err != nil:
			c.failed = append(c.failed, chaosFailure{id, 0, fmt.Sprintf("request %s: %v", id, err)})
		case resp.StatusCode != 200:
			c.failed = append(c.failed, chaosFailure{id, resp.StatusCode,
				fmt.Sprintf("%d %s (request %s)", resp.StatusCode, strings.TrimSpace(string(body)), id)})
		case c.post && string(body) != id:
			c.failed = append(c.failed, chaosFailure{id, resp.StatusCode, fmt.Sprintf("POST %s answered %q", id, body)})
		default:
			c.ok = append(c.ok, id)
		}
		if err != nil || resp.Close {
			conn.Close()
			conn = nil
		}
	}
}

// killAWorker sends SIGKILL to one of the ready workers, picked at random; false when there
// was none to kill.
func killAWorker(f *Front, rng *rand.Rand) bool {
	st, err := f.Status()
	if err != nil {
		return false
	}
	workers := ready(st)
	if len(workers) == 0 {
		return false
	}
	return signalInNamespace(f.TenderPid(), workers[rng.IntN(len(workers))], syscall.SIGKILL)
}

// signalInNamespace signals a worker that status shows, if it is still there.
func signalInNamespace(tender int, w apps.WorkerStatus, sig syscall.Signal) bool {
	pid, ok := hostPid(tender, w.Pid)
	return ok && syscall.Kill(pid, sig) == nil
}
