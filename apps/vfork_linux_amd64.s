#include "textflag.h"

// func vfork() (pid uintptr, errno syscall.Errno)
//
// clone(CLONE_VM|CLONE_VFORK|SIGCHLD): the child runs on this very stack until it execs or
// exits, while tender's thread waits. The return address is kept in a register across the
// system call, since the child's own calls overwrite the stack below its caller's frame
// (package syscall's rawVforkSyscall does the same).
TEXT ·vfork(SB),NOSPLIT|NOFRAME,$0-16
	MOVQ	$0x4111, DI // CLONE_VM|CLONE_VFORK|SIGCHLD
	MOVQ	$0, SI
	MOVQ	$0, DX
	MOVQ	$0, R10
	MOVQ	$0, R8
	MOVQ	$0, R9
	MOVQ	$56, AX // SYS_clone
	POPQ	R12
	SYSCALL
	PUSHQ	R12
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	MOVQ	$0, pid+0(FP)
	NEGQ	AX
	MOVQ	AX, errno+8(FP)
	RET
ok:
	MOVQ	AX, pid+0(FP)
	MOVQ	$0, errno+8(FP)
	RET
