#include "textflag.h"

// handler is called by the kernel with the C calling convention: the signal's number in R0,
// its siginfo in R1. It writes numbers[sig] to the relay, unless tender sent the signal itself,
// and returns to the link register, which the kernel set to its own restorer; see
// catch_linux.go.
TEXT ·handler(SB),NOSPLIT|NOFRAME,$0
	MOVW	16(R1), R3 // info.si_pid
	MOVW	·selfPid(SB), R4
	CMPW	R3, R4
	BEQ	done
	MOVD	$·numbers(SB), R1
	ADD	R0, R1, R1 // &numbers[sig]
	MOVW	·relayFd(SB), R0
	MOVD	$1, R2
	MOVD	$64, R8 // SYS_write
	SVC
done:
	RET

// func handlerAddrs() (handler, restorer uintptr)
TEXT ·handlerAddrs(SB),NOSPLIT,$0-16
	MOVD	$·handler(SB), R0
	MOVD	R0, handler+0(FP)
	MOVD	ZR, restorer+8(FP)
	RET
