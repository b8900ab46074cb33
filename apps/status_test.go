package apps

import (
	"testing"
	"time"
)

func TestHealth(t *testing.T) {
	ready, starting, running := WorkerStatus{State: string(Ready)}, WorkerStatus{State: string(Starting)}, WorkerStatus{State: Running}
	typed := func(typ string, w WorkerStatus) WorkerStatus { w.Type = typ; return w }
	for _, tc := range []struct {
		name string
		st   Status
		ok   bool
		why  string
	}{
		{"single, running", Status{Workers: []WorkerStatus{{State: Running}}}, true, "the app is running"},
		{"single, exited", Status{Workers: []WorkerStatus{{State: "exited"}}}, false, "the app is not ready: exited"},
		{"pool, one of two ready", Status{Workers: []WorkerStatus{ready, starting}}, true, "1 of 2 workers ready"},
		{"pool, none ready", Status{Workers: []WorkerStatus{starting, {State: "backoff"}}}, false, "none of 2 workers is ready"},
		{"stopping", Status{Workers: []WorkerStatus{ready, ready}, Tender: TenderStatus{Stopping: true}}, false, "tender is stopping (SIGTERM or SIGINT received)"},
		{"no worker at all", Status{}, false, "none of 0 workers is ready"},
		{"procfile, web ready, worker starting", Status{Workers: []WorkerStatus{typed("web", ready), typed("worker", starting)}}, true, "the app is ready"},
		{"procfile, no web ready, worker running", Status{Workers: []WorkerStatus{typed("web", starting), typed("worker", running)}}, false, "the app is not ready: starting"},
		{"procfile without web, every type up", Status{Workers: []WorkerStatus{typed("worker", running), typed("worker", starting), typed("clock", ready)}}, true, "every process type has a worker up (worker, clock)"},
		{"procfile without web, a type down", Status{Workers: []WorkerStatus{typed("worker", running), typed("clock", WorkerStatus{State: "backoff"})}}, false, "no worker of process type clock is up"},
		{"release phase", Status{Workers: []WorkerStatus{typed("release", running)}}, false, "the release phase is running"},
	} {
		if ok, why := tc.st.Health(); ok != tc.ok || why != tc.why {
			t.Errorf("%s: %v %q, want %v %q", tc.name, ok, why, tc.ok, tc.why)
		}
	}
}

// Each worker draws its own recycling limits: the settings plus a random part within the
// jitter (requests) or a tenth (lifetime), so that workers started together spread out.
func TestWorkerLimitsAreStaggered(t *testing.T) {
	cfg := PoolConfig{MaxRequests: 1000, MaxRequestsJitter: 50, MaxLifetime: time.Hour}
	requests, lifetimes := map[uint64]bool{}, map[time.Duration]bool{}
	for range 100 {
		var w worker
		w.limits(cfg)
		if w.maxRequests < 1000 || w.maxRequests > 1050 {
			t.Fatalf("max requests %d, want 1000 to 1050", w.maxRequests)
		}
		if w.maxLifetime < time.Hour || w.maxLifetime > time.Hour+6*time.Minute {
			t.Fatalf("lifetime %v, want 1h to 1h6m", w.maxLifetime)
		}
		requests[w.maxRequests], lifetimes[w.maxLifetime] = true, true
	}
	if len(requests) < 10 || len(lifetimes) < 10 {
		t.Errorf("100 workers drew %d request limits and %d lifetimes: not staggered", len(requests), len(lifetimes))
	}
	var w worker
	w.limits(PoolConfig{MaxRequests: 7})
	if w.maxRequests != 7 || w.maxLifetime != 0 {
		t.Errorf("without jitter or lifetime: %d, %v; want 7, 0", w.maxRequests, w.maxLifetime)
	}
}
