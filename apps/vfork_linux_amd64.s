#include "textflag.h"

// func vfork(tid *int32) (pid uintptr, errno syscall.Errno)
//
// clone(CLONE_VM|CLONE_VFORK|CLONE_PARENT_SETTID|SIGCHLD, 0, tid): the kernel writes the
// child's pid to *tid before the child runs, then the child runs on this very stack until it
// execs or exits, while tender's thread waits. The return address is kept in a register across
// the system call, since the child's own calls overwrite the stack below its caller's frame
// (package syscall's rawVforkSyscall does the same); tid is read before it moves.
TEXT ·vfork(SB),NOSPLIT|NOFRAME,$0-24
	MOVQ	tid+0(FP), DX
	MOVQ	$0x104111, DI // CLONE_VM|CLONE_VFORK|CLONE_PARENT_SETTID|SIGCHLD
	MOVQ	$0, SI
	MOVQ	$0, R10
	MOVQ	$0, R8
	MOVQ	$0, R9
	MOVQ	$56, AX // SYS_clone
	POPQ	R12
	SYSCALL
	PUSHQ	R12
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	MOVQ	$0, pid+8(FP)
	NEGQ	AX
	MOVQ	AX, errno+16(FP)
	RET
ok:
	MOVQ	AX, pid+8(FP)
	MOVQ	$0, errno+16(FP)
	RET
