package apps

import "testing"

// tender exits 1 only when no slot serves and every one is in a crash loop: one worker that
// keeps crashing must not end a pool whose other workers serve (it did, after 65 s, with
// three of four workers answering every request).
func TestNoneCanServe(t *testing.T) {
	ok := slotHealth{serving: true}
	looping := slotHealth{crashLoop: true}
	loopingServing := slotHealth{crashLoop: true, serving: true} // ready now, not yet stable
	starting := slotHealth{}                                     // starting, or backing off within its budget
	for _, tc := range []struct {
		name  string
		slots []slotHealth
		want  bool
	}{
		{"every slot serves", []slotHealth{ok, ok, ok, ok}, false},
		{"one of four in a crash loop", []slotHealth{ok, looping, ok, ok}, false},
		{"three of four in a crash loop, one serves", []slotHealth{looping, looping, ok, looping}, false},
		{"all in a crash loop, one ready for now", []slotHealth{looping, loopingServing, looping}, false},
		{"all in a crash loop but one still within its budget", []slotHealth{looping, starting, looping}, false},
		{"every slot in a crash loop", []slotHealth{looping, looping, looping, looping}, true},
		{"a deployment that never started: every slot spent its budget", []slotHealth{looping, looping}, true},
		{"one slot, in a crash loop", []slotHealth{looping}, true},
		{"one slot, starting", []slotHealth{starting}, false},
		{"no slot (scaled away, or stopping)", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := noneCanServe(tc.slots); got != tc.want {
				t.Errorf("noneCanServe(%+v) = %v, want %v", tc.slots, got, tc.want)
			}
		})
	}
}

// A process type that cannot run at all ends tender with 1, even while the others serve: a
// job runner that never runs must reach the orchestrator. A type that still runs, one slot
// of it failing, ends nothing.
func TestCannotRun(t *testing.T) {
	ok := slotHealth{serving: true}
	looping := slotHealth{crashLoop: true}
	starting := slotHealth{}
	web := func(slots ...slotHealth) typeHealth { return typeHealth{"web", slots} }
	worker := func(slots ...slotHealth) typeHealth { return typeHealth{"worker", slots} }
	for _, tc := range []struct {
		name  string
		types []typeHealth
		want  string
	}{
		{"every type runs", []typeHealth{web(ok, ok, ok), worker(ok, ok)}, ""},
		{"one web worker of three in a crash loop", []typeHealth{web(ok, looping, ok), worker(ok, ok)}, ""},
		{"one worker of two in a crash loop", []typeHealth{web(ok, ok, ok), worker(looping, ok)}, ""},
		{"every worker in a crash loop, web serving", []typeHealth{web(ok, ok, ok), worker(looping, looping)}, "worker"},
		{"every web worker in a crash loop", []typeHealth{web(looping, looping), worker(ok)}, "web"},
		{"the workers still within their budget", []typeHealth{web(ok), worker(looping, starting)}, ""},
		{"a type scaled to nothing", []typeHealth{web(ok), worker()}, ""},
		{"pool mode: one type, every slot looping", []typeHealth{web(looping, looping)}, "web"},
		{"no type", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cannotRun(tc.types); got != tc.want {
				t.Errorf("cannotRun(%+v) = %q, want %q", tc.types, got, tc.want)
			}
		})
	}
}
