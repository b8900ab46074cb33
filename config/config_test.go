package config

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c, err := Load([]string{"app"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.KillGrace != 5*time.Second || c.Workers != 1 || c.Pool() || *c.OOMScoreAdj != -1000 ||
		c.SignalTarget != TargetGroup || c.LogLevel != "info" || c.QueueSize != 100 || c.Protocol != ProtocolHTTP ||
		c.AppOOMScoreAdj != nil || c.AppCaps != nil || c.Listen != nil || c.RestartSet {
		t.Errorf("unexpected defaults: %+v", c)
	}
	if strings.Join(c.Command, " ") != "app" {
		t.Errorf("command %q", c.Command)
	}
}

func TestGoodValues(t *testing.T) {
	for _, tc := range []struct {
		env   []string
		args  []string
		check func(*Config) bool
	}{
		{[]string{"TENDER_KILL_GRACE=0"}, nil, func(c *Config) bool { return c.KillGrace == 0 }},
		{[]string{"TENDER_KILL_GRACE=2"}, nil, func(c *Config) bool { return c.KillGrace == 2*time.Second }},
		{[]string{"TENDER_KILL_GRACE=1m30s"}, nil, func(c *Config) bool { return c.KillGrace == 90*time.Second }},
		{[]string{"TENDER_KILL_GRACE=2s"}, []string{"--kill-grace=300ms"}, func(c *Config) bool { return c.KillGrace == 300*time.Millisecond }},
		{nil, []string{"--kill-grace", "1s"}, func(c *Config) bool { return c.KillGrace == time.Second }},
		{[]string{"TENDER_SIGNAL_TARGET=child"}, nil, func(c *Config) bool { return c.SignalTarget == TargetChild }},
		{[]string{"TENDER_SIGNAL_REWRITE=15:3,2:0,HUP:SIGUSR1,RTMIN+1:RTMAX-1"}, nil, func(c *Config) bool {
			r := c.SignalRewrite
			return r[15] == 3 && r[2] == 0 && r[syscall.SIGHUP] == syscall.SIGUSR1 && r[35] == 63 && len(r) == 4
		}},
		{[]string{"TENDER_EXIT_REMAP=143:0, 1:2"}, nil, func(c *Config) bool { return c.ExitRemap[143] == 0 && c.ExitRemap[1] == 2 }},
		{[]string{"TENDER_OOM_SCORE_ADJ=off"}, nil, func(c *Config) bool { return c.OOMScoreAdj == nil }},
		{[]string{"TENDER_OOM_SCORE_ADJ=100"}, nil, func(c *Config) bool { return *c.OOMScoreAdj == 100 }},
		{[]string{"TENDER_APP_OOM_SCORE_ADJ=+500"}, nil, func(c *Config) bool {
			a := c.AppOOMScoreAdj
			return a.Relative && a.Value == 500 && a.Resolve(700) == 1000 && a.Resolve(-1000) == -500
		}},
		{[]string{"TENDER_APP_OOM_SCORE_ADJ=-5"}, nil, func(c *Config) bool { return !c.AppOOMScoreAdj.Relative && c.AppOOMScoreAdj.Resolve(300) == -5 }},
		{[]string{"TENDER_APP_CAPS=cap_net_bind_service, CHOWN"}, nil, func(c *Config) bool {
			return strings.Join(c.AppCaps, ",") == "CAP_NET_BIND_SERVICE,CAP_CHOWN"
		}},
		{[]string{"TENDER_APP_CAPS=none"}, nil, func(c *Config) bool { return c.AppCaps != nil && len(c.AppCaps) == 0 }},
		{[]string{"TENDER_APP_NOFILE=1024"}, nil, func(c *Config) bool { return *c.AppNofile == Rlimit{1024, 1024} }},
		{[]string{"TENDER_APP_NOFILE=512:4096"}, nil, func(c *Config) bool { return *c.AppNofile == Rlimit{512, 4096} }},
		{[]string{"TENDER_APP_USER=app:staff"}, nil, func(c *Config) bool { return c.AppUser == "app:staff" }},
		{[]string{"TENDER_APP_NO_NEW_PRIVS=yes"}, nil, func(c *Config) bool { return c.AppNoNewPrivs }},
		{[]string{"TENDER_WORKERS=4"}, nil, func(c *Config) bool { return c.Workers == 4 && c.Pool() }},
		{[]string{"TENDER_LISTEN=:8080"}, nil, func(c *Config) bool { return c.Pool() && c.Listen.Network == "tcp" && c.Listen.Addr == ":8080" }},
		{[]string{"TENDER_LISTEN=[::1]:80"}, nil, func(c *Config) bool { return c.Listen.Addr == "[::1]:80" }},
		{[]string{"TENDER_WORKER_TIMEOUT=30s"}, nil, func(c *Config) bool { return c.WorkerTimeout == 30*time.Second }},
		{nil, []string{"--worker-timeout=0"}, func(c *Config) bool { return c.WorkerTimeout == 0 }},
		{nil, nil, func(c *Config) bool { return c.BodyMinRate == 500 }},
		{[]string{"TENDER_BODY_MIN_RATE=1KiB"}, nil, func(c *Config) bool { return c.BodyMinRate == 1024 }},
		{nil, []string{"--body-min-rate=0"}, func(c *Config) bool { return c.BodyMinRate == 0 }},
		{nil, nil, func(c *Config) bool { return !c.Underscores }},
		{[]string{"TENDER_UNDERSCORES_IN_HEADERS=true"}, nil, func(c *Config) bool { return c.Underscores }},
		{nil, nil, func(c *Config) bool { return !c.AccessLog }},
		{[]string{"TENDER_ACCESS_LOG=on"}, nil, func(c *Config) bool { return c.AccessLog }},
		{[]string{"TENDER_ACCESS_LOG=on"}, []string{"--access-log=off"}, func(c *Config) bool { return !c.AccessLog }},
		{[]string{"TENDER_LISTEN=unix:/run/app.sock"}, nil, func(c *Config) bool { return c.Listen.Network == "unix" && c.Listen.Addr == "/run/app.sock" }},
		{[]string{"TENDER_MEMORY_LIMIT=512MiB"}, nil, func(c *Config) bool { return c.MemoryLimit == 512<<20 }},
		{[]string{"TENDER_MEMORY_LIMIT=1g"}, nil, func(c *Config) bool { return c.MemoryLimit == 1<<30 }},
		{[]string{"TENDER_MEMORY_LIMIT=1.5GB"}, nil, func(c *Config) bool { return c.MemoryLimit == 1.5e9 }},
		{[]string{"TENDER_MEMORY_LIMIT=1048576"}, nil, func(c *Config) bool { return c.MemoryLimit == 1<<20 }},
		{[]string{"TENDER_RESTART=on-failure"}, nil, func(c *Config) bool { return c.Restart == RestartOnFailure && c.RestartSet }},
		{[]string{"TENDER_PROTOCOL=TCP"}, nil, func(c *Config) bool { return c.Protocol == ProtocolTCP }},
		{[]string{"TENDER_LOG_LEVEL=warning"}, nil, func(c *Config) bool { return c.LogLevel == "warn" }},
		{[]string{"TENDER_CONTROL=off", "TENDER_ADMIN=127.0.0.1:9090"}, nil, func(c *Config) bool { return c.Control == "off" && c.Admin.Addr == "127.0.0.1:9090" }},
		{[]string{"TENDER_WORKERS="}, nil, func(c *Config) bool { return c.Workers == 1 && !c.WorkersSet }}, // empty is unset
		{[]string{"TENDER_WORKERS=1"}, nil, func(c *Config) bool { return c.Workers == 1 && c.WorkersSet && !c.Pool() }},
		{[]string{"TENDER_ENV_FILE=.env"}, nil, func(c *Config) bool { return c.EnvFile == ".env" && !c.Pool() && c.OutputLabels }},
		{[]string{"TENDER_OUTPUT_LABELS=off"}, nil, func(c *Config) bool { return !c.OutputLabels }},
	} {
		c, err := Load(append(tc.args, "app"), tc.env)
		if err != nil {
			t.Errorf("%v %v: %v", tc.env, tc.args, err)
			continue
		}
		if !tc.check(c) {
			t.Errorf("%v %v: got %+v", tc.env, tc.args, c)
		}
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	for _, tc := range []struct {
		env  string
		flag string
		want string // part of the message: what is accepted
	}{
		{"TENDER_KILL_GRACE=abc", "", "duration"},
		{"TENDER_KILL_GRACE=-1s", "", "duration"},
		{"", "--kill-grace=soon", "duration"},
		{"TENDER_WORKERS=0", "", ">= 1"},
		{"TENDER_WORKERS=-3", "", ">= 1"},
		{"TENDER_WORKERS=four", "", ">= 1"},
		{"", "--workers=2.5", ">= 1"},
		{"TENDER_MAX_RESTARTS=-1", "", ">= 0"},
		{"TENDER_SIGNAL_TARGET=parent", "", "group, child"},
		{"TENDER_SIGNAL_REWRITE=15", "", "FROM:TO"},
		{"TENDER_SIGNAL_REWRITE=15:99", "", "unknown signal"},
		{"TENDER_SIGNAL_REWRITE=KILL:TERM", "", "cannot be caught"},
		{"TENDER_SIGNAL_REWRITE=BOGUS:TERM", "", "unknown signal"},
		{"TENDER_EXIT_REMAP=143", "", "FROM:TO"},
		{"TENDER_EXIT_REMAP=256:0", "", "0..255"},
		{"TENDER_OOM_SCORE_ADJ=-1001", "", "-1000 to 1000"},
		{"TENDER_OOM_SCORE_ADJ=low", "", "-1000 to 1000"},
		{"TENDER_APP_OOM_SCORE_ADJ=+x", "", "+N"},
		{"TENDER_APP_OOM_SCORE_ADJ=2000", "", "-1000 to 1000"},
		{"TENDER_APP_CAPS=CAP_FLY", "", "unknown capability"},
		{"TENDER_APP_NOFILE=10:5", "", "SOFT <= HARD"},
		{"TENDER_APP_NOFILE=lots", "", "SOFT:HARD"},
		{"TENDER_APP_USER=:staff", "", "user:group"},
		{"TENDER_APP_NO_NEW_PRIVS=maybe", "", "true or false"},
		{"TENDER_LISTEN=8080", "", ":PORT"},
		{"TENDER_LISTEN=:99999", "", "1 to 65535"},
		{"TENDER_LISTEN=unix:relative.sock", "", "unix:/absolute"},
		{"TENDER_PROTOCOL=udp", "", "http, tcp"},
		{"TENDER_MEMORY_LIMIT=lots", "", "size"},
		{"TENDER_MEMORY_LIMIT=5XB", "", "size"},
		{"TENDER_START_TIMEOUT=0", "", "above 0"},
		{"TENDER_WORKER_TIMEOUT=soon", "", "duration"},
		{"TENDER_WORKER_TIMEOUT=-1s", "", "duration"},
		{"TENDER_BODY_MIN_RATE=fast", "", "bytes a second"},
		{"TENDER_UNDERSCORES_IN_HEADERS=sometimes", "", "true or false"},
		{"TENDER_BODY_MIN_RATE=-5", "", "bytes a second"},
		{"TENDER_ACCESS_LOG=verbose", "", "on or off"},
		{"", "--body-min-rate=2TiB", "at most 1TiB"},
		{"TENDER_LOG_LEVEL=loud", "", "trace, debug"},
		{"TENDER_LOG_FORMAT=xml", "", "text, json"},
		{"TENDER_CONTROL=relative/path", "", "absolute path"},
		{"TENDER_ADMIN=nowhere", "", ":PORT"},
		{"TENDER_OUTPUT_LABELS=maybe", "", "on, off"},
		{"TENDER_FORMATION=web=2", "", "set TENDER_PROCFILE too"},
	} {
		var env, args []string
		var name string
		if tc.env != "" {
			env = []string{tc.env}
			name, _, _ = strings.Cut(tc.env, "=")
		} else {
			args = []string{tc.flag}
			name, _, _ = strings.Cut(tc.flag, "=")
		}
		_, err := Load(append(args, "app"), env)
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%s%s: got %v, want a config error", tc.env, tc.flag, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, name) || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("%s%s: message %q should name %s and say %q on one line", tc.env, tc.flag, msg, name, tc.want)
		}
	}
}

func TestRestartDelayMaxBelowDelay(t *testing.T) {
	_, err := Load([]string{"app"}, []string{"TENDER_RESTART_DELAY=5s", "TENDER_RESTART_DELAY_MAX=1s"})
	if err == nil || !strings.Contains(err.Error(), "TENDER_RESTART_DELAY_MAX") {
		t.Errorf("got %v", err)
	}
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		sub     string
		command string
		json    bool
		usage   bool
	}{
		{args: []string{"--", "app", "--flag"}, command: "app --flag"},
		{args: []string{"app", "-x"}, command: "app -x"},
		{args: []string{"--workers=2", "--", "status"}, command: "status"}, // a program called status
		{args: []string{"status"}, sub: CmdStatus},
		{args: []string{"status", "--json"}, sub: CmdStatus, json: true},
		{args: []string{"--json", "probe"}, sub: CmdProbe, json: true},
		{args: []string{"version"}, sub: CmdVersion},
		{args: []string{"--version"}, sub: CmdVersion},
		{args: []string{"--help"}, sub: CmdHelp},
		{args: []string{"-h"}, sub: CmdHelp},
		{args: []string{"scale", "3"}, sub: CmdScale},
		{args: []string{"restart"}, sub: CmdRestart},
		{args: []string{}, usage: true},
		{args: []string{"--"}, usage: true},
		{args: []string{"--no-such-flag", "app"}, usage: true},
		{args: []string{"scale"}, usage: true},
		{args: []string{"status", "extra"}, usage: true},
	} {
		c, err := Load(tc.args, nil)
		if tc.usage {
			if !errors.Is(err, ErrUsage) {
				t.Errorf("%q: got %v, want a usage error", tc.args, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if c.Sub != tc.sub || strings.Join(c.Command, " ") != tc.command || c.JSON != tc.json {
			t.Errorf("%q: got sub %q command %q json %v", tc.args, c.Sub, c.Command, c.JSON)
		}
	}
	if _, err := Load([]string{"scale", "0"}, nil); err == nil {
		t.Error("scale 0 accepted")
	}
}

// With a Procfile tender needs no COMMAND, and refuses one; restart and scale may name a
// process type.
func TestProcfileAndTypes(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		env   []string
		sub   string
		typ   string
		n     int
		fails string // part of the error, when Load is to fail
	}{
		{args: []string{"--procfile", "Procfile"}, n: 1},
		{env: []string{"TENDER_PROCFILE=/app/Procfile", "TENDER_FORMATION=web=2"}, n: 1},
		{args: []string{"--procfile=Procfile", "--", "app"}, fails: "TENDER_PROCFILE=Procfile and a COMMAND"},
		{env: []string{"TENDER_PROCFILE=Procfile"}, args: []string{"app"}, fails: "not both"},
		{args: []string{"scale", "worker=3"}, sub: CmdScale, typ: "worker", n: 3},
		{args: []string{"scale", "4"}, sub: CmdScale, n: 4},
		{args: []string{"scale", "=3"}, fails: "TYPE=N"},
		{args: []string{"scale", "worker=0"}, fails: "TYPE=N"},
		{args: []string{"scale", "worker="}, fails: "TYPE=N"},
		{args: []string{"restart", "worker"}, sub: CmdRestart, typ: "worker", n: 1},
		{args: []string{"restart"}, sub: CmdRestart, n: 1},
		{args: []string{"restart", "web", "worker"}, fails: "one process type at most"},
	} {
		c, err := Load(tc.args, tc.env)
		switch {
		case tc.fails != "":
			if err == nil || !strings.Contains(err.Error(), tc.fails) {
				t.Errorf("%q %q: got %v, want an error saying %q", tc.args, tc.env, err, tc.fails)
			}
		case err != nil:
			t.Errorf("%q %q: %v", tc.args, tc.env, err)
		case c.Sub != tc.sub || c.Type != tc.typ || c.Workers != tc.n:
			t.Errorf("%q %q: got sub %q type %q n %d", tc.args, tc.env, c.Sub, c.Type, c.Workers)
		case c.Sub == CmdRun && !c.Pool():
			t.Errorf("%q %q: a Procfile is not pool mode", tc.args, tc.env)
		}
	}
}

func TestUnknownVariablesAreWarnings(t *testing.T) {
	c, err := Load([]string{"app"}, []string{"TENDER_KILLGRACE=1s", "TENDER_WORKER_ID=3", "TENDER_ZZZZZZZZZZZZZZZZZZ=1", "OTHER=1"})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(c.Warnings, "\n")
	// No suggestion far off: TENDER_FOO is no TENDER_CONTROL, TENDER_MEMORY no TENDER_RESTART.
	for in, want := range map[string]string{"TENDER_MEMORY": "TENDER_MEMORY_LIMIT", "TENDER_FOO": "", "TENDER_WORKER": "TENDER_WORKERS", "TENDER_LOGLEVEL": "TENDER_LOG_LEVEL"} {
		if near := closest(in, names()); near != want {
			t.Errorf("closest(%s) = %q, want %q", in, near, want)
		}
	}
	if len(c.Warnings) != 2 || !strings.Contains(got, "did you mean TENDER_KILL_GRACE?") ||
		!strings.Contains(got, "TENDER_ZZZZZZZZZZZZZZZZZZ is ignored") || strings.Contains(got, "TENDER_ZZZZZZZZZZZZZZZZZZ is ignored; did") {
		t.Errorf("warnings:\n%s", got)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{
		"15": 15, "TERM": 15, "SIGTERM": 15, "sigterm": 15, "hup": 1, "RTMIN": 34, "RTMIN+3": 37, "SIGRTMAX-2": 62, "64": 64,
	} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "65", "-1", "FOO", "RTMIN+31", "", "SIG"} {
		if _, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q) accepted", in)
		}
	}
}

func TestRemapExit(t *testing.T) {
	c, err := Load([]string{"--exit-remap=143:0,0:1", "app"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[int]int{143: 0, 0: 1, 1: 1, 137: 137, 255: 255} {
		if got := c.RemapExit(in); got != want {
			t.Errorf("RemapExit(%d) = %d, want %d", in, got, want)
		}
	}
}

func names() []string {
	var out []string
	for _, v := range vars {
		out = append(out, v.env())
	}
	return out
}
