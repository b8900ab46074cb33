package apps

import "testing"

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
