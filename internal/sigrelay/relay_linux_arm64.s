#include "textflag.h"

// handler is called by the kernel with the C calling convention: the signal's number in R0,
// its siginfo in R1. Unless tender sent the signal itself, it counts it in pending[sig] and
// writes one byte to the relay to wake the reader, and returns to the link register, which the
// kernel set to its own restorer; see relay_linux.go.
TEXT ·handler(SB),NOSPLIT|NOFRAME,$0
	MOVW	8(R1), R3 // info.si_code
	CMPW	$0, R3
	BGT	relay // raised by the kernel (SI_KERNEL, CLD_EXITED...): no sender, and no si_pid
	MOVW	16(R1), R3 // info.si_pid
	MOVW	·selfPid(SB), R4
	CMPW	R3, R4
	BEQ	done
relay:
	MOVD	$·pending(SB), R3
	ADD	R0<<2, R3, R3 // &pending[sig]
again: // pending[sig]++, atomically: the count, not the byte, is what the reader acts on
	LDAXRW	(R3), R4
	ADDW	$1, R4, R4
	STLXRW	R4, (R3), R5
	CBNZW	R5, again
	MOVD	$·numbers(SB), R1
	ADD	R0, R1, R1 // &numbers[sig]
	MOVW	·relayFd(SB), R0
	MOVD	$1, R2
	MOVD	$64, R8 // SYS_write; EAGAIN (the relay full of wake-ups) loses nothing
	SVC
done:
	RET

// faultHandler is handler for the faults (SIGSEGV...). One that a process sent (si_code <= 0:
// kill, sigqueue, tgkill) it relays like handler; one that the kernel raised for tender's own
// code it passes on to the runtime's handler, faultChain, with the registers and stack the
// kernel gave, so that it becomes a panic as ever.
TEXT ·faultHandler(SB),NOSPLIT|NOFRAME,$0
	MOVW	8(R1), R3 // info.si_code
	CMPW	$0, R3
	BLE	sent
	MOVD	·faultChain(SB), R3
	JMP	(R3)
sent:
	JMP	·handler(SB)

// func handlerAddrs() (handler, fault, restorer uintptr)
TEXT ·handlerAddrs(SB),NOSPLIT,$0-24
	MOVD	$·handler(SB), R0
	MOVD	R0, handler+0(FP)
	MOVD	$·faultHandler(SB), R0
	MOVD	R0, fault+8(FP)
	MOVD	ZR, restorer+16(FP)
	RET
