// Command reexec is the floor of a Go init with a clean-start stage, for initbench to measure
// beside tender: `reexec -- CMD` re-executes itself once, and that second Go process execs
// CMD, while the first waits for it. Nothing else: two Go runtime starts and three execs.
package main

import (
	"os"
	"syscall"
)

const stageArg = "stage"

func main() {
	if len(os.Args) < 3 {
		os.Stderr.WriteString("usage: reexec -- CMD [ARG...]\n")
		os.Exit(2)
	}
	if os.Args[1] == stageArg {
		err := syscall.Exec(os.Args[2], os.Args[2:], os.Environ())
		os.Stderr.WriteString("reexec: " + err.Error() + "\n")
		os.Exit(127)
	}
	argv := append([]string{os.Args[0], stageArg}, os.Args[2:]...)
	pid, err := syscall.ForkExec("/proc/self/exe", argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		os.Stderr.WriteString("reexec: " + err.Error() + "\n")
		os.Exit(126)
	}
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	if ws.Signaled() {
		os.Exit(128 + int(ws.Signal()))
	}
	os.Exit(ws.ExitStatus())
}
