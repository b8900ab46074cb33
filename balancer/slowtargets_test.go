package balancer

import (
	"testing"
	"time"
)

// The table learns each target's answer time apart: the path without its query, by method;
// a target it has not seen is not known.
func TestSlowTargetsLearn(t *testing.T) {
	var st slowTargets
	report, home := targetKey([]byte("GET"), []byte("/report?year=2025")), targetKey([]byte("GET"), []byte("/"))
	if st.expected(report) != 0 {
		t.Fatal("a target never answered is known")
	}
	st.learn(report, 40*time.Millisecond)
	st.learn(home, 200*time.Microsecond)
	st.learn(report, 80*time.Millisecond) // a quarter of the way: 50 ms
	st.learn(home, 50*time.Millisecond)   // behind a block: counted as 800 µs at most
	st.learn(home, 0)
	if got := st.expected(targetKey([]byte("GET"), []byte("/report?year=2026"))); got != 50*time.Millisecond {
		t.Errorf("/report expected %v, want 50ms (its query does not count)", got)
	}
	if got := st.expected(home); got != 263*time.Microsecond { // 350 µs, then 263 µs
		t.Errorf("/ expected %v, want 263µs", got)
	}
	if got := st.expected(targetKey([]byte("POST"), []byte("/report"))); got != 0 {
		t.Errorf("POST /report expected %v, want unknown", got)
	}
}
