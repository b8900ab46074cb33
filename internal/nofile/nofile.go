// Package nofile remembers the RLIMIT_NOFILE that tender was started with.
//
// Package syscall raises the soft limit of every Go program to the hard limit in its init, and
// os/exec sets it back in the children it starts. tender starts its apps with its own fork and
// exec (package apps), so it must set the limit back itself, and the Go runtime keeps the
// original where no other package can read it. This package reads it first: it imports
// nothing that imports syscall, and Go initialises packages in the order of their import
// paths among those whose imports are ready (the spec's rule since Go 1.21), so this one,
// ready from the start and sorted before "syscall", runs its init before syscall's.
package nofile

import (
	"runtime"
	"unsafe"
)

// Rlimit is the kernel's struct rlimit64.
type Rlimit struct{ Cur, Max uint64 }

// atStart is the limit before syscall's init raised it; ok is false where it could not be read.
var atStart, ok = read()

// AtStart is the RLIMIT_NOFILE tender was started with, and whether it could be read.
func AtStart() (Rlimit, bool) { return atStart, ok }

// rawSyscall6 is syscall.RawSyscall6. Pulled by name, it does not make package syscall an
// import of this one, and it needs nothing of syscall's init.
//
//go:linkname rawSyscall6 syscall.RawSyscall6
func rawSyscall6(trap, a1, a2, a3, a4, a5, a6 uintptr) (r1, r2, errno uintptr)

const rlimitNofile = 7 // RLIMIT_NOFILE on every Linux architecture but mips and sparc

func read() (Rlimit, bool) {
	var r Rlimit
	nr := prlimit64()
	if nr == 0 || runtime.GOOS != "linux" {
		return r, false
	}
	_, _, errno := rawSyscall6(nr, 0, rlimitNofile, 0, uintptr(unsafe.Pointer(&r)), 0, 0)
	return r, errno == 0
}

// prlimit64 is the number of the prlimit64 system call on this architecture, 0 if unknown here.
func prlimit64() uintptr {
	switch runtime.GOARCH {
	case "amd64":
		return 302
	case "arm64", "riscv64", "loong64":
		return 261
	case "386":
		return 340
	case "arm":
		return 369
	case "ppc64", "ppc64le":
		return 325
	case "s390x":
		return 334
	}
	return 0
}
