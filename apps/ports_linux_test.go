package apps

import (
	"net"
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// Worker ports come from outside the kernel's ephemeral range, which outgoing connections and
// binds to port 0 take ports from, above it first; never below 1024.
func TestWorkerPortSpans(t *testing.T) {
	for _, tc := range []struct {
		ephemeral portSpan
		want      []portSpan
	}{
		{portSpan{32768, 60999}, []portSpan{{61000, 65535}, {1024, 32767}}}, // Linux's default
		{portSpan{1024, 65535}, nil},                                        // a common tuning: nothing outside
		{portSpan{1, 65535}, nil},
		{portSpan{1025, 65535}, []portSpan{{1024, 1024}}},
		{portSpan{32768, 65535}, []portSpan{{1024, 32767}}},
		{portSpan{500, 60999}, []portSpan{{61000, 65535}}},
		{portSpan{10, 20}, []portSpan{{1024, 65535}}},
		{portSpan{40000, 65534}, []portSpan{{65535, 65535}, {1024, 39999}}},
	} {
		if got := workerPortSpans(tc.ephemeral); !slices.Equal(got, tc.want) {
			t.Errorf("workerPortSpans(%v) = %v, want %v", tc.ephemeral, got, tc.want)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	for text, want := range map[string]portSpan{"32768\t60999\n": {32768, 60999}, "1024 65535": {1024, 65535}} {
		if got, err := parsePortRange(text); err != nil || got != want {
			t.Errorf("parsePortRange(%q) = %v, %v; want %v", text, got, err, want)
		}
	}
	for _, text := range []string{"", "32768", "1 2 3", "a b", "60999 32768", "0 100", "1024 65536"} {
		if got, err := parsePortRange(text); err == nil {
			t.Errorf("parsePortRange(%q) = %v, want an error", text, got)
		}
	}
}

// A port in use is not picked, nor one given to another worker; with none left the kernel picks
// one, and the fallback is said once.
func TestPortPickerSkipsPortsInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	if portFree(busy) {
		t.Fatalf("port %d has a listener, and portFree says it is free", busy)
	}
	pp := &portPicker{spans: []portSpan{{busy, busy}}, given: map[int]bool{}, log: hclog.NewNullLogger()}
	port, err := pp.pick()
	if err != nil || port == busy || !pp.given[port] || !pp.fallbackSaid {
		t.Fatalf("pick() = %d, %v (fallback said %v); want another port than %d, from the kernel", port, err, pp.fallbackSaid, busy)
	}
	// The port just given is not free for the next worker, even before its worker binds it.
	pp.spans = []portSpan{{port, port}}
	if again, err := pp.pick(); err != nil || again == port {
		t.Errorf("pick() gave %d twice (%v)", port, err)
	}
	pp.release(port)
	if pp.given[port] {
		t.Errorf("port %d still held after release", port)
	}
}

// The listener on a worker's port must be the worker's (or its children's): a port taken by
// someone else accepts connections too.
func TestListensOn(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	none := func(int) []int { return nil }
	if !listensOn(os.Getpid(), port, none) {
		t.Errorf("this process listens on %d, and listensOn says no", port)
	}
	other := exec.Command("sleep", "30")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Process.Kill(); _ = other.Wait() }()
	if listensOn(other.Process.Pid, port, none) {
		t.Errorf("sleep does not listen on %d, and listensOn says it does", port)
	}
	parent := func(int) []int { return []int{os.Getpid()} } // as if this process were its child
	if !listensOn(other.Process.Pid, port, parent) {
		t.Errorf("a descendant listens on %d, and listensOn says no", port)
	}
}
