#include "textflag.h"

// func vfork(tid *int32) (pid uintptr, errno syscall.Errno)
//
// clone(CLONE_VM|CLONE_VFORK|CLONE_PARENT_SETTID|SIGCHLD, 0, tid): the kernel writes the
// child's pid to *tid before the child runs, then the child runs on this very stack until it
// execs or exits, while tender's thread waits. The return address stays in the link register,
// out of reach of the child's writes to the stack (package syscall's rawVforkSyscall does the
// same).
TEXT ·vfork(SB),NOSPLIT,$0-24
	MOVD	tid+0(FP), R2
	MOVD	$0x104111, R0 // CLONE_VM|CLONE_VFORK|CLONE_PARENT_SETTID|SIGCHLD
	MOVD	$0, R1
	MOVD	$0, R3
	MOVD	$0, R4
	MOVD	$0, R5
	MOVD	$220, R8 // SYS_clone
	SVC
	CMN	$4095, R0
	BCC	ok
	MOVD	ZR, pid+8(FP)
	NEG	R0, R0
	MOVD	R0, errno+16(FP)
	RET
ok:
	MOVD	R0, pid+8(FP)
	MOVD	ZR, errno+16(FP)
	RET
