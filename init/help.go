package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"text/tabwriter"

	"github.com/tenderinit/tender/config"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}

const usage = `tender: a tiny PID 1 for containers that reaps, forwards signals, restarts and balances.

Usage:
  tender [flags] [--] COMMAND [ARG...]   run COMMAND under tender
  tender --procfile PATH [flags]          run every process type of a Procfile under tender
  tender status [--json]                  the worker table of the running tender
  tender health                           exit 0 when the running tender can serve, 1 otherwise
  tender probe [--json]                   what this environment allows, and what tender will do
  tender restart [TYPE]                   rolling restart of the workers (of one process type)
  tender scale N | TYPE=N                 run N workers (of web or the only type, or of TYPE)
  tender version | --version | --help

Every setting is an environment variable TENDER_<NAME> and a flag --<name>; the flag wins.
`

const signalsAndCodes = `
Signals (single mode): every catchable signal but SIGCHLD and SIGURG is forwarded to the child.
Signals (pool mode): TERM/INT graceful stop, HUP rolling restart of every type, TTIN/TTOU one
  web worker more/less, USR1/USR2 forwarded to every worker. During a Procfile's release phase,
  every signal goes to the release process, and TERM/INT stop it.

Exit status: the child's; 128+N when signal N killed it; 127 command not found (or a Procfile
  command that needs /bin/sh, without one); 126 cannot execute; 2 usage or configuration error.
  In pool mode 0 after a graceful stop, 1 when no worker can serve or a process type cannot run
  at all (its workers crash in a loop); a failed release phase's status.
`

func printHelp(w io.Writer) {
	fmt.Fprint(w, usage)
	section := ""
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, v := range config.Vars() {
		if v.Section != section {
			section = v.Section
			fmt.Fprintf(tw, "\n%s:\n", section)
		}
		def := ""
		if v.Default != "" {
			def = " (default " + v.Default + ")"
		}
		fmt.Fprintf(tw, "  %s, %s\t%s%s\n", v.Env(), v.Flag(), v.Help, def)
	}
	tw.Flush()
	fmt.Fprint(w, signalsAndCodes)
}
