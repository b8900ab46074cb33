#include "textflag.h"

// handler is called by the kernel with the C calling convention: the signal's number in DI,
// its siginfo in SI. It writes numbers[sig] to the relay, unless tender sent the signal itself,
// and returns; see catch_linux.go.
TEXT ·handler(SB),NOSPLIT|NOFRAME,$0
	MOVL	16(SI), AX // info.si_pid
	CMPL	AX, ·selfPid(SB)
	JEQ	done
	LEAQ	·numbers(SB), SI
	ADDQ	DI, SI // &numbers[sig]
	MOVLQSX	·relayFd(SB), DI
	MOVQ	$1, DX
	MOVQ	$1, AX // SYS_write
	SYSCALL
done:
	RET

// restorer returns from handler: amd64 kernels ask for one (SA_RESTORER).
TEXT ·restorer(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$15, AX // SYS_rt_sigreturn
	SYSCALL
	INT	$3 // not reached

// func handlerAddrs() (handler, restorer uintptr)
TEXT ·handlerAddrs(SB),NOSPLIT,$0-16
	LEAQ	·handler(SB), AX
	MOVQ	AX, handler+0(FP)
	LEAQ	·restorer(SB), AX
	MOVQ	AX, restorer+8(FP)
	RET
