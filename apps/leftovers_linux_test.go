package apps

import "testing"

func TestParseStatGroup(t *testing.T) {
	for _, tc := range []struct {
		stat  string
		state byte
		pgid  int
		ok    bool
	}{
		{"42 (sleep) S 1 42 42 0 -1 4194560", 'S', 42, true},
		{"43 (a (b) c) Z 42 7 7 0", 'Z', 7, true}, // comm with spaces and parentheses
		{"44 (x) R 1", 0, 0, false},
		{"45 sleep S 1 45", 0, 0, false},
		{"", 0, 0, false},
	} {
		state, pgid, ok := parseStatGroup([]byte(tc.stat))
		if state != tc.state || pgid != tc.pgid || ok != tc.ok {
			t.Errorf("parseStatGroup(%q) = %q %d %v, want %q %d %v", tc.stat, state, pgid, ok, tc.state, tc.pgid, tc.ok)
		}
	}
}
