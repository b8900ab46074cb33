// Package apps starts and watches over the app processes: the clean start of every process,
// the single foreground child, the worker pool and its status.
package apps

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Plan is what the clean start does to every app process between fork and exec, beyond what
// it does to all (stdio, signals, fds). The settings have the names and shapes of an OCI
// config.json's "process"; nil and empty ones leave the process as tender is.
type Plan struct {
	OOMScoreAdj     *int
	User            *specs.User
	Capabilities    *specs.LinuxCapabilities
	Rlimits         []specs.POSIXRlimit
	NoNewPrivileges bool
}

// StartError is a failed clean start: the app's code never ran. Step names what failed.
type StartError struct {
	Step string
	Msg  string
	// Code is the exit status a shell would give: 127 for a command not found, else 126.
	Code int
}

func (e *StartError) Error() string { return e.Step + ": " + e.Msg }

// Exit statuses of an app process that could not be started, as a shell reports them.
const (
	ExitNotFound      = 127
	ExitCannotExecute = 126
)
