#include "textflag.h"

// handler is called by the kernel with the C calling convention: the signal's number in DI,
// its siginfo in SI. Unless tender sent the signal itself, it counts it in pending[sig] and
// writes one byte to the relay to wake the reader, and returns; see relay_linux.go.
TEXT ·handler(SB),NOSPLIT|NOFRAME,$0
	MOVL	8(SI), AX // info.si_code
	CMPL	AX, $0
	JGT	relay // raised by the kernel (SI_KERNEL, CLD_EXITED...): no sender, and no si_pid
	MOVL	16(SI), AX // info.si_pid
	CMPL	AX, ·selfPid(SB)
	JEQ	done
relay:
	LEAQ	·pending(SB), AX
	LOCK
	INCL	(AX)(DI*4) // pending[sig]++: the count, not the byte, is what the reader acts on
	LEAQ	·numbers(SB), SI
	ADDQ	DI, SI // &numbers[sig]
	MOVLQSX	·relayFd(SB), DI
	MOVQ	$1, DX
	MOVQ	$1, AX // SYS_write; EAGAIN (the relay full of wake-ups) loses nothing
	SYSCALL
done:
	RET

// faultHandler is handler for the faults (SIGSEGV...). One that a process sent (si_code <= 0:
// kill, sigqueue, tgkill) it relays like handler; one that the kernel raised for tender's own
// code it passes on to the runtime's handler, faultChain, with the registers and stack the
// kernel gave, so that it becomes a panic as ever.
TEXT ·faultHandler(SB),NOSPLIT|NOFRAME,$0
	MOVL	8(SI), AX // info.si_code
	CMPL	AX, $0
	JLE	sent
	MOVQ	·faultChain(SB), AX
	JMP	AX
sent:
	JMP	·handler(SB)

// restorer returns from handler: amd64 kernels ask for one (SA_RESTORER).
TEXT ·restorer(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$15, AX // SYS_rt_sigreturn
	SYSCALL
	INT	$3 // not reached

// func handlerAddrs() (handler, fault, restorer uintptr)
TEXT ·handlerAddrs(SB),NOSPLIT,$0-24
	LEAQ	·handler(SB), AX
	MOVQ	AX, handler+0(FP)
	LEAQ	·faultHandler(SB), AX
	MOVQ	AX, fault+8(FP)
	LEAQ	·restorer(SB), AX
	MOVQ	AX, restorer+16(FP)
	RET
