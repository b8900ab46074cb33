// Package apps starts and watches over the app processes: the clean start of every process,
// the single foreground child, the worker pool and its status.
package apps

import (
	"encoding/json"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// StageArg is the hidden argument that makes tender run the clean-start stage instead of
// its normal life. It is not a word anyone would type.
const StageArg = "__tender_clean_start__"

// Plan is what the clean-start stage does to a process before it becomes the app. The
// process settings have the names and shapes of an OCI config.json's "process".
type Plan struct {
	Args            []string                 `json:"args"`
	Env             []string                 `json:"env"`
	OOMScoreAdj     *int                     `json:"oomScoreAdj,omitempty"`
	User            *specs.User              `json:"user,omitempty"`
	Capabilities    *specs.LinuxCapabilities `json:"capabilities,omitempty"`
	Rlimits         []specs.POSIXRlimit      `json:"rlimits,omitempty"`
	NoNewPrivileges bool                     `json:"noNewPrivileges,omitempty"`
	// ListenFds is how many sockets, at fds 3 and up, the app receives by socket activation.
	ListenFds int `json:"listenFds,omitempty"`
	// Foreground makes the app's process group the terminal's foreground group.
	Foreground bool `json:"foreground,omitempty"`
}

func (p *Plan) encode() ([]byte, error) { return json.Marshal(p) }

func decodePlan(b []byte) (*Plan, error) {
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("bad plan: %w", err)
	}
	if len(p.Args) == 0 {
		return nil, fmt.Errorf("bad plan: no command")
	}
	return &p, nil
}

// StageError is a failure of the clean-start stage: the app was not started.
type StageError struct {
	Step string // the step that failed, as the stage names it
	Msg  string
}

func (e *StageError) Error() string { return e.Step + ": " + e.Msg }
