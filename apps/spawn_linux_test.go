package apps

import (
	"errors"
	"io"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/tenderinit/tender/reaper"
)

func TestCandidates(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"/bin/sh", "/usr/bin", []string{"/bin/sh"}},
		{"./app", "/usr/bin", []string{"./app"}},
		{"sh", "/usr/bin:/bin", []string{"/usr/bin/sh", "/bin/sh"}},
		{"sh", "/usr/bin::/bin", []string{"/usr/bin/sh", "./sh", "/bin/sh"}}, // empty is the working directory
		{"sh", "", nil},
	} {
		if got := candidates(tc.name, tc.path); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("candidates(%q, %q) = %q, want %q", tc.name, tc.path, got, tc.want)
		}
	}
}

// testReaper is the one owner of wait4 in this test binary: two would steal each other's exits.
var testReaper = sync.OnceValue(func() *reaper.Reaper { return reaper.New(hclog.NewNullLogger(), nil) })

// start starts sp through a Spawner, with its stdout and stderr on a pipe, and returns what it
// wrote there and its Exit.
func start(t *testing.T, sp Spawn) (string, reaper.Exit, error) {
	t.Helper()
	return startIn(t, "", sp)
}

// startIn is start with the apps' directory dir.
func startIn(t *testing.T, dir string, sp Spawn) (string, reaper.Exit, error) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	sp.Stdio = [3]int{0, p[1], p[1]}
	s := &Spawner{Reaper: testReaper(), Dir: dir}
	exits := make(chan reaper.Exit, 1)
	pid, err := s.Start(sp, exits)
	unix.Close(p[1])
	r := os.NewFile(uintptr(p[0]), "output")
	out, _ := io.ReadAll(r)
	r.Close()
	if pid == 0 {
		return string(out), reaper.Exit{}, err
	}
	return string(out), <-exits, err
}

// What tender has and the app must not: an ignored signal, an fd without close-on-exec. The
// child starts with neither, with close_range and with the fallback for kernels before 5.11.
func TestStartIsClean(t *testing.T) {
	t.Run("close_range", testStartIsClean)
	t.Run("without close_range", func(t *testing.T) {
		saved := closeRangeWorks
		closeRangeWorks = func() bool { return false }
		defer func() { closeRangeWorks = saved }()
		testStartIsClean(t)
	})
}

func testStartIsClean(t *testing.T) {
	signal.Ignore(syscall.SIGUSR2)
	defer signal.Reset(syscall.SIGUSR2)
	leak, err := unix.Open("/dev/null", unix.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(leak)

	out, exit, err := start(t, Spawn{
		Args: []string{"/bin/sh", "-c", `grep -E '^Sig(Blk|Ign)' /proc/self/status; ls /proc/self/fd | tr '\n' ' '`},
		Env:  []string{"PATH=/usr/bin:/bin"},
	})
	if err != nil || exit.Code() != 0 {
		t.Fatalf("start: %v, exit %v, output:\n%s", err, exit, out)
	}
	for _, want := range []string{"SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"} {
		if !strings.Contains(out, want) {
			t.Errorf("the child's status lacks %q:\n%s", want, out)
		}
	}
	// ls sees its own directory fd as 3; the child sh had 0, 1 and 2 only.
	if !strings.HasSuffix(strings.TrimSpace(out), "0 1 2 3") {
		t.Errorf("the child has fds beyond stdio (ls's own is 3): %q", out)
	}
}

func TestStartReportsTheFailedStep(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		step     string
		msg      string
		code     int
		startsNo bool // fails before any process exists
	}{
		{"missing file", []string{"/no/such/app"}, "exec", "/no/such/app: no such file or directory", ExitNotFound, false},
		{"not in PATH", []string{"no-such-app"}, "exec", "no-such-app: not found in PATH=/nowhere:/bin", ExitNotFound, false},
		{"a directory", []string{"/tmp"}, "exec", "/tmp: permission denied", ExitCannotExecute, false},
		{"no command", nil, "exec", "no command", ExitCannotExecute, true},
		{"directory gone", []string{"/bin/true"}, "change directory", "/no/such/dir: no such file or directory", ExitCannotExecute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := ""
			if tc.step == "change directory" {
				dir = "/no/such/dir"
			}
			_, exit, err := startIn(t, dir, Spawn{Args: tc.args, Env: []string{"PATH=/nowhere:/bin"}})
			var se *StartError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *StartError", err)
			}
			if se.Step != tc.step || se.Msg != tc.msg || se.Code != tc.code {
				t.Errorf("got step %q msg %q code %d, want %q %q %d", se.Step, se.Msg, se.Code, tc.step, tc.msg, tc.code)
			}
			if !tc.startsNo && exit.Code() != tc.code {
				t.Errorf("the process exited %d, want %d", exit.Code(), tc.code)
			}
		})
	}
}
