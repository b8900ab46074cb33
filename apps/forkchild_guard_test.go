package apps

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// childMayCall lists what the code between vfork and exec may call, and what each of those may
// call in turn, in tender's binary as make builds it. Anything else (a bounds check's panic, a
// write barrier, an allocation, a stack check that could grow the stack) would run Go's runtime
// in a child that shares tender's memory with one thread of it: a crash or a corrupted parent.
var childMayCall = map[string][]string{
	"github.com/tenderinit/tender/apps.forkChild1": {
		"syscall.RawSyscall", "syscall.RawSyscall6",
		"github.com/tenderinit/tender/apps.vfork.abi0",
		// In tender only, before the fork and after vfork returns there.
		"syscall.runtime_BeforeFork", "syscall.runtime_AfterFork", "runtime.entersyscall", "runtime.exitsyscall",
		// The prologue's stack check, before the fork.
		"runtime.morestack_noctxt.abi0",
	},
	"syscall.RawSyscall":                           {"syscall.RawSyscall6"},
	"syscall.RawSyscall6":                          {"internal/runtime/syscall/linux.Syscall6"},
	"internal/runtime/syscall/linux.Syscall6":      {},
	"github.com/tenderinit/tender/apps.vfork.abi0": {},
}

// callees are the functions called or jumped to by fn, by the disassembly of binary.
func callees(t *testing.T, binary, fn string) []string {
	t.Helper()
	out, err := exec.Command("go", "tool", "objdump", "-s", "^"+regexp.QuoteMeta(fn)+"$", binary).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool objdump %s: %v\n%s", fn, err, out)
	}
	if !strings.Contains(string(out), "TEXT "+fn+"(SB)") {
		t.Fatalf("no function %s in %s", fn, binary)
	}
	// CALL pkg.fn(SB), or a jump out of the function to one (a tail call).
	target := regexp.MustCompile(`\s(?:CALL|JMP)\s+([^\s(]+)\(SB\)`)
	var found []string
	for _, line := range strings.Split(string(out), "\n") {
		if m := target.FindStringSubmatch(line); m != nil && m[1] != fn { // not its own start again
			found = append(found, m[1])
		}
	}
	return found
}

// The code of the vforked child calls nothing but raw system calls and the fork hooks, and the
// raw system calls nothing but the kernel. A future edit that lets a bounds check, an
// allocation or any other runtime call in, or a compiler that adds one, fails here.
func TestForkChildCallsOnlyRawSystemCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tender")
	}
	// As make builds it, but for -ldflags=-s -w, which strip the symbols objdump reads and
	// leave the code as it is.
	binary := filepath.Join(t.TempDir(), "tender")
	build := exec.Command("go", "build", "-trimpath", "-o", binary, "../init")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building tender: %v\n%s", err, out)
	}
	for fn, allowed := range childMayCall {
		stackChecks := 0
		for _, callee := range callees(t, binary, fn) {
			if callee == "runtime.morestack_noctxt.abi0" {
				stackChecks++
			}
			if !slices.Contains(allowed, callee) {
				t.Errorf("%s calls %s, which the vforked child may not call", fn, callee)
			}
		}
		if stackChecks > 1 {
			t.Errorf("%s checks its stack %d times: only its prologue, before the fork, may", fn, stackChecks)
		}
	}
}
