package apps

import "testing"

func TestHealth(t *testing.T) {
	ready, starting := WorkerStatus{State: string(Ready)}, WorkerStatus{State: string(Starting)}
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
	} {
		if ok, why := tc.st.Health(); ok != tc.ok || why != tc.why {
			t.Errorf("%s: %v %q, want %v %q", tc.name, ok, why, tc.ok, tc.why)
		}
	}
}
