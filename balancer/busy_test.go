package balancer

import (
	"testing"
	"time"
)

func TestBusyness(t *testing.T) {
	for _, tc := range []struct {
		sessions    int64
		concurrency int
		busy        int64
		full        bool
	}{
		{0, 0, 0, false},
		{1, 0, 1, false}, // not collapsed to "busy" (the Passenger 4.0.56 bug)
		{84, 0, 84, false},
		{0, 4, 0, false},
		{1, 4, busyScale / 4, false},
		{3, 4, 3 * busyScale / 4, false},
		{4, 4, busyScale, true},
		{5, 4, 5 * busyScale / 4, true},
		{1, 1, busyScale, true},
	} {
		if got := Busyness(tc.sessions, tc.concurrency); got != tc.busy {
			t.Errorf("Busyness(%d, %d) = %d, want %d", tc.sessions, tc.concurrency, got, tc.busy)
		}
		if got := Full(tc.sessions, tc.concurrency); got != tc.full {
			t.Errorf("Full(%d, %d) = %v, want %v", tc.sessions, tc.concurrency, got, tc.full)
		}
	}
	// More sessions always means busier, and never equal: the order between workers holds.
	for s := int64(0); s < 100; s++ {
		if Busyness(s+1, 0) <= Busyness(s, 0) || Busyness(s+1, 200) <= Busyness(s, 200) {
			t.Fatalf("busyness does not grow with sessions at %d", s)
		}
	}
}

func routable(n int) []*Backend {
	var bs []*Backend
	for i := 0; i < n; i++ {
		b := NewBackend(i, "")
		b.SetRoutable(true)
		bs = append(bs, b)
	}
	return bs
}

// The seed scenario: 4 workers with unlimited concurrency and 100 long sessions: each holds
// 25, not 84 on one and 1 on the next.
func TestRouterSpreadsLongSessions(t *testing.T) {
	for _, conc := range []int{0, 50} {
		r := NewRouter(conc, 100, time.Second)
		r.now = func() int64 { return 0 } // no worker stalls here: TestSeedSpreadWhileStalling
		bs := routable(4)
		for _, b := range bs {
			r.Add(b)
		}
		for i := 0; i < 100; i++ {
			if _, err := r.Acquire(nil); err != nil {
				t.Fatal(err)
			}
		}
		for _, b := range bs {
			if b.Sessions() != 25 {
				t.Errorf("concurrency %d: worker %d holds %d sessions, want 25", conc, b.ID, b.Sessions())
			}
		}
		// Sessions end unevenly; new ones fill the least busy first.
		for i := 0; i < 10; i++ {
			r.Release(bs[2], true, false)
		}
		for i := 0; i < 10; i++ {
			if b, _ := r.Acquire(nil); b != bs[2] {
				t.Fatalf("session %d went to worker %d, want the least busy, 2", i, b.ID)
			}
		}
	}
}

func TestRouterTakesTurnsAmongEquals(t *testing.T) {
	r := NewRouter(0, 10, time.Second)
	bs := routable(3)
	for _, b := range bs {
		r.Add(b)
	}
	seen := map[int]int{}
	for i := 0; i < 30; i++ {
		b, _ := r.Acquire(nil)
		seen[b.ID]++
		r.Release(b, true, false)
	}
	if seen[0] != 10 || seen[1] != 10 || seen[2] != 10 {
		t.Errorf("short sessions went %v, want 10 each", seen)
	}
}

func TestRouterSkipsUnroutableAndExcluded(t *testing.T) {
	r := NewRouter(0, 10, 50*time.Millisecond)
	bs := routable(3)
	for _, b := range bs {
		r.Add(b)
	}
	bs[0].SetRoutable(false)
	for i := 0; i < 6; i++ {
		b, _ := r.Acquire([]*Backend{bs[1]})
		if b != bs[2] {
			t.Fatalf("got worker %d, want 2 (0 is draining, 1 excluded)", b.ID)
		}
	}
	r.Remove(bs[2])
	if _, err := r.Acquire([]*Backend{bs[1]}); err != ErrQueueTimeout {
		t.Errorf("with no worker left: %v, want a queue timeout", err)
	}
}

// Concurrency 1, 4 workers, 8 sessions: 4 served, 4 wait in the queue and go in order as
// slots free; with the queue full, the next is refused at once.
func TestRouterQueue(t *testing.T) {
	r := NewRouter(1, 4, 2*time.Second)
	bs := routable(4)
	for _, b := range bs {
		r.Add(b)
	}
	for i := 0; i < 4; i++ {
		if _, err := r.Acquire(nil); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan int, 4)
	for i := 0; i < 4; i++ {
		go func() {
			b, err := r.Acquire(nil)
			if err != nil {
				t.Error(err)
				return
			}
			got <- i
			_ = b
		}()
		waitQueue(t, r, i+1) // queued in this order
	}
	start := time.Now()
	if _, err := r.Acquire(nil); err != ErrQueueFull || time.Since(start) > 100*time.Millisecond {
		t.Errorf("a session past the full queue: %v after %v, want ErrQueueFull at once", err, time.Since(start))
	}
	for want := 0; want < 4; want++ {
		r.Release(bs[want], true, false)
		if i := <-got; i != want {
			t.Errorf("queued session %d went before %d: the queue is not FIFO", i, want)
		}
	}
	if r.QueueLen() != 0 {
		t.Errorf("queue length %d", r.QueueLen())
	}
}

func waitQueue(t *testing.T, r *Router, n int) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); r.QueueLen() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("queue length %d, want %d", r.QueueLen(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRouterQueueTimeoutAndClose(t *testing.T) {
	r := NewRouter(1, 10, 100*time.Millisecond)
	bs := routable(1)
	r.Add(bs[0])
	r.Acquire(nil)
	start := time.Now()
	if _, err := r.Acquire(nil); err != ErrQueueTimeout || time.Since(start) < 90*time.Millisecond {
		t.Errorf("got %v after %v, want a timeout after 100ms", err, time.Since(start))
	}
	done := make(chan error)
	go func() { _, err := r.Acquire(nil); done <- err }()
	waitQueue(t, r, 1)
	r.Close()
	if err := <-done; err != ErrClosed {
		t.Errorf("a queued session at Close: %v, want ErrClosed", err)
	}
	if _, err := r.Acquire(nil); err != ErrClosed {
		t.Errorf("after Close: %v", err)
	}
}

// A backend added later serves the queue.
func TestRouterAddServesQueue(t *testing.T) {
	r := NewRouter(0, 10, time.Second)
	done := make(chan *Backend)
	go func() { b, _ := r.Acquire(nil); done <- b }()
	waitQueue(t, r, 1)
	b := routable(1)[0]
	r.Add(b)
	if got := <-done; got != b || b.Sessions() != 1 {
		t.Errorf("got %v with %d sessions", got, b.Sessions())
	}
}

// A session waiting for a worker other than the ones that failed it does not hold up the
// sessions behind it: with worker 0 excluded by the first and worker 1 full, a new session gets
// worker 0 at once, and a third, like the first, waits for room on 1 (a conformance run saw
// every client wait the whole queue timeout behind one request that had failed everywhere).
func TestRouterQueueIsNotHeldUpByExclusions(t *testing.T) {
	r := NewRouter(1, 10, 2*time.Second)
	bs := routable(2)
	for _, b := range bs {
		r.Add(b)
	}
	if b, _ := r.Acquire([]*Backend{bs[0]}); b != bs[1] {
		t.Fatalf("got %v, want worker 1", b)
	}
	retried := make(chan *Backend, 1)
	go func() { b, _ := r.Acquire([]*Backend{bs[0]}); retried <- b }()
	waitQueue(t, r, 1)

	start := time.Now()
	if b, err := r.Acquire(nil); b != bs[0] || err != nil || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("a new session behind the retry: %v %v after %v, want worker 0 at once", b, err, time.Since(start))
	}
	third := make(chan *Backend, 1)
	go func() { b, _ := r.Acquire(nil); third <- b }()
	waitQueue(t, r, 2)
	r.Release(bs[1], true, false)
	if b := <-retried; b != bs[1] {
		t.Errorf("the retry got %v, want worker 1, freed first", b)
	}
	r.Release(bs[0], true, false)
	if b := <-third; b != bs[0] {
		t.Errorf("the third session got %v, want worker 0", b)
	}
	if r.QueueLen() != 0 {
		t.Errorf("queue length %d", r.QueueLen())
	}
}
