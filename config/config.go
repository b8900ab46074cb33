// Package config turns tender's command line and TENDER_* environment into a Config.
//
// Every setting is one entry of the table in vars.go: its environment variable, its flag, its
// default and the parser that checks it. A flag wins over the variable; an invalid value is an
// *Error that names the variable (or flag), the value and what is accepted.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Prefix starts the name of every environment variable tender reads.
const Prefix = "TENDER_"

// Subcommands that are not "run COMMAND under tender".
const (
	CmdRun     = ""
	CmdStatus  = "status"
	CmdProbe   = "probe"
	CmdVersion = "version"
	CmdHelp    = "help"
	CmdRestart = "restart"
	CmdScale   = "scale"
	CmdHealth  = "health"
)

var subcommands = map[string]bool{
	CmdStatus: true, CmdProbe: true, CmdVersion: true, CmdHelp: true, CmdRestart: true, CmdScale: true, CmdHealth: true,
}

// SignalTarget says who receives a forwarded signal.
type SignalTarget int

const (
	TargetGroup SignalTarget = iota // the child's process group
	TargetChild                     // the child alone
)

// RestartPolicy says when an app process that exited is started again.
type RestartPolicy int

const (
	RestartNever RestartPolicy = iota
	RestartOnFailure
	RestartAlways
)

func (p RestartPolicy) String() string {
	return [...]string{"never", "on-failure", "always"}[p]
}

// Protocol is what a session is on the front socket.
type Protocol int

const (
	ProtocolHTTP Protocol = iota // one HTTP request
	ProtocolTCP                  // one connection
)

func (p Protocol) String() string { return [...]string{"http", "tcp"}[p] }

// OOMAdj is a requested oom_score_adj, absolute or relative to tender's original score.
type OOMAdj struct {
	Value    int
	Relative bool
}

// Resolve gives the absolute score for a process whose original score was orig.
func (a OOMAdj) Resolve(orig int) int {
	if !a.Relative {
		return a.Value
	}
	return min(max(orig+a.Value, -1000), 1000)
}

// Rlimit is a soft and hard limit.
type Rlimit struct{ Soft, Hard uint64 }

// Address is a parsed listen address: network "tcp" or "unix".
type Address struct {
	Network string
	Addr    string
}

func (a Address) String() string {
	if a.Network == "unix" {
		return "unix:" + a.Addr
	}
	return a.Addr
}

// Config is everything tender was told to do.
type Config struct {
	Sub     string   // one of the Cmd constants
	SubArgs []string // arguments of a subcommand (scale N)
	JSON    bool     // --json for status and probe
	Command []string // COMMAND [ARG...]
	// Type is the process type that restart and scale name ("" for every type, or for web
	// or the only type when scaling).
	Type string

	LogLevel  string
	LogFormat string

	SignalTarget  SignalTarget
	SignalRewrite map[syscall.Signal]syscall.Signal // to 0 means drop
	KillGrace     time.Duration
	ExitRemap     map[int]int

	Restart         RestartPolicy
	RestartSet      bool // TENDER_RESTART was given; otherwise the mode picks the default
	MaxRestarts     int  // 0 = no limit
	MinUptime       time.Duration
	RestartDelay    time.Duration
	RestartDelayMax time.Duration

	OOMScoreAdj    *int    // nil = leave tender's score alone
	AppOOMScoreAdj *OOMAdj // nil = tender's original score
	AppUser        string
	AppCaps        []string // nil = unchanged; empty = drop all
	AppNofile      *Rlimit
	AppNoNewPrivs  bool

	Workers int
	// WorkersAuto: TENDER_WORKERS=auto, one worker per CPU tender may use. Workers is 1 until
	// the caller, which can probe the machine, sets it.
	WorkersAuto bool
	WorkersSet  bool // TENDER_WORKERS was given: with a Procfile, it is web's count
	// Procfile is the Procfile to run instead of COMMAND; Formation the count of each of its
	// types, as given (checked once the Procfile is read); EnvFile adds to every app's
	// environment; OutputLabels prefixes each line of the apps' output with its process.
	Procfile      string
	Formation     string
	EnvFile       string
	OutputLabels  bool
	Listen        *Address
	Protocol      Protocol
	StartTimeout  time.Duration
	StopTimeout   time.Duration
	ShutdownDelay time.Duration
	HealthTimeout time.Duration
	MemoryLimit   uint64
	MaxRequests   uint64
	// MaxRequestsJitter, MaxLifetime: staggered recycling.
	MaxRequestsJitter uint64
	MaxLifetime       time.Duration
	StopSignal        syscall.Signal
	Watchdog          time.Duration
	Concurrency       int
	QueueSize         int
	QueueTimeout      time.Duration
	HeaderTimeout     time.Duration
	ClientTimeout     time.Duration
	BodyMinRate       int64 // bytes a second
	Underscores       bool  // pass on request headers with '_' in their names
	WorkerTimeout     time.Duration
	AccessLog         bool // a line per request (http) or connection (tcp)

	Control string // "" = the default search path, "off" = none
	Admin   *Address

	Warnings []string // unknown TENDER_* names and the like, to log once logging is set up
}

// RemapExit applies TENDER_EXIT_REMAP to an exit status.
func (c *Config) RemapExit(code int) int {
	if to, ok := c.ExitRemap[code]; ok {
		return to
	}
	return code
}

// Pool reports whether tender runs a pool of workers rather than one child in the foreground.
func (c *Config) Pool() bool {
	return c.Workers > 1 || c.WorkersAuto || c.Listen != nil || c.Procfile != ""
}

// Error is an invalid setting. Its message names the variable or flag, the value and what
// is accepted, on one line.
type Error struct {
	Name   string // TENDER_X or --x
	Value  string
	Accept string
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid %s=%q: %s", e.Name, e.Value, e.Accept)
}

// ErrUsage is a command line that is wrong as a whole (no command, unknown flag).
var ErrUsage = errors.New("usage")

// UsageError is a malformed command line.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }
func (e *UsageError) Unwrap() error { return ErrUsage }

// Usage is the synopsis printed after a usage error, as Unix tools print theirs.
const Usage = "usage: tender [flags] [--] COMMAND [ARG...], or tender --procfile PATH [flags]   (tender --help lists the flags and subcommands)"

// Load reads args (without the program name) and the environment ("KEY=value" entries).
func Load(args, environ []string) (*Config, error) {
	env := envMap(environ)
	c := &Config{}

	fs := flag.NewFlagSet("tender", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fromFlag := map[string]string{}
	for _, v := range vars {
		name := v.flag()
		fs.Func(name, v.Help, func(s string) error { fromFlag[name] = s; return nil })
	}
	var help, version bool
	fs.BoolVar(&help, "help", false, "")
	fs.BoolVar(&help, "h", false, "")
	fs.BoolVar(&version, "version", false, "")
	fs.BoolVar(&c.JSON, "json", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.Sub = CmdHelp
			return c, nil
		}
		return nil, &UsageError{Msg: err.Error()}
	}

	for _, v := range vars {
		name, raw, ok := v.flag(), "", false
		if s, set := fromFlag[name]; set {
			raw, ok, name = s, true, "--"+name
		} else if s, set := env[v.env()]; set && s != "" {
			raw, ok, name = s, true, v.env()
		}
		if !ok {
			raw = v.Default
		}
		if err := v.Set(c, strings.TrimSpace(raw), ok); err != nil {
			return nil, &Error{Name: name, Value: raw, Accept: err.Error()}
		}
	}
	c.Warnings = unknownVars(env)

	rest := fs.Args()
	switch {
	case help:
		c.Sub = CmdHelp
	case version:
		c.Sub = CmdVersion
	case len(rest) > 0 && subcommands[rest[0]] && !dashDashBefore(args, len(rest)):
		c.Sub, c.SubArgs = rest[0], rest[1:]
		return c, c.checkSubcommand()
	case len(rest) == 0 && c.Procfile == "":
		return nil, &UsageError{Msg: "no command to run"}
	default:
		c.Command = rest
	}
	return c, c.checkCombination()
}

// dashDashBefore reports whether the n remaining arguments were preceded by "--", which
// makes "tender -- status" run a program called status.
func dashDashBefore(args []string, n int) bool {
	i := len(args) - n - 1
	return i >= 0 && args[i] == "--"
}

func (c *Config) checkSubcommand() error {
	switch c.Sub {
	case CmdScale:
		if len(c.SubArgs) != 1 {
			return &UsageError{Msg: "tender scale needs one number, or a process type and a number: tender scale N, tender scale TYPE=N"}
		}
		typ, count, named := strings.Cut(c.SubArgs[0], "=")
		if !named {
			typ, count = "", typ
		}
		n, err := parseCount(count, 1)
		if err != nil || named && typ == "" {
			return &Error{Name: "scale", Value: c.SubArgs[0], Accept: "want N or TYPE=N with N a whole number >= 1"}
		}
		c.Type, c.Workers = typ, n
	case CmdRestart:
		if len(c.SubArgs) > 1 {
			return &UsageError{Msg: fmt.Sprintf("tender restart takes one process type at most, got %q", c.SubArgs)}
		}
		if len(c.SubArgs) == 1 {
			c.Type = c.SubArgs[0]
		}
	case CmdStatus, CmdProbe:
		for _, a := range c.SubArgs {
			if a != "--json" && a != "-json" {
				return &UsageError{Msg: fmt.Sprintf("tender %s takes only --json, got %q", c.Sub, a)}
			}
			c.JSON = true
		}
	case CmdVersion, CmdHelp, CmdHealth:
		if len(c.SubArgs) > 0 {
			return &UsageError{Msg: fmt.Sprintf("tender %s takes no arguments, got %q", c.Sub, c.SubArgs)}
		}
	}
	return nil
}

// checkCombination rejects settings that are valid alone but not together.
func (c *Config) checkCombination() error {
	if c.RestartDelayMax < c.RestartDelay {
		return &Error{Name: vars.byName("RESTART_DELAY_MAX").env(), Value: c.RestartDelayMax.String(),
			Accept: fmt.Sprintf("must not be below TENDER_RESTART_DELAY (%s)", c.RestartDelay)}
	}
	if c.Procfile != "" && len(c.Command) > 0 {
		return &UsageError{Msg: fmt.Sprintf("TENDER_PROCFILE=%s and a COMMAND %q: tender runs the Procfile's types or COMMAND, not both", c.Procfile, c.Command)}
	}
	if c.Formation != "" && c.Procfile == "" {
		return &Error{Name: vars.byName("FORMATION").env(), Value: c.Formation,
			Accept: "counts the types of a Procfile: set TENDER_PROCFILE too (without one, TENDER_WORKERS is the count of COMMAND)"}
	}
	return nil
}

func envMap(environ []string) map[string]string {
	m := make(map[string]string)
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, Prefix) {
			m[k] = v
		}
	}
	return m
}

// setByTender are variables tender sets for its own workers; finding one is not a mistake.
var setByTender = map[string]bool{"TENDER_WORKER_ID": true, "TENDER_PROCESS_TYPE": true}

func unknownVars(env map[string]string) []string {
	known := make(map[string]bool, len(vars))
	names := make([]string, 0, len(vars))
	for _, v := range vars {
		known[v.env()] = true
		names = append(names, v.env())
	}
	var warnings []string
	for k := range env {
		if known[k] || setByTender[k] {
			continue
		}
		w := fmt.Sprintf("unknown variable %s is ignored", k)
		if near := closest(k, names); near != "" {
			w += fmt.Sprintf("; did you mean %s?", near)
		}
		warnings = append(warnings, w)
	}
	sort.Strings(warnings)
	return warnings
}

// closest returns the name nearest to s by edit distance, or "" when none is near enough to
// be a likely typo.
// closest is the known name nearest s, or "" when none is near: the part after TENDER_ at
// most a third wrong, or one a start of the other (TENDER_MEMORY for TENDER_MEMORY_LIMIT).
func closest(s string, names []string) string {
	s = strings.TrimPrefix(s, "TENDER_")
	best, bestDist := "", len(s)/3+1
	for _, n := range names {
		name := strings.TrimPrefix(n, "TENDER_")
		d := editDistance(s, name)
		if len(s) >= 4 && len(name) >= 4 && (strings.HasPrefix(name, s) || strings.HasPrefix(s, name)) {
			d = 0
		}
		if d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
