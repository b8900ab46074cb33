package config

import (
	"errors"
	"strings"
	"syscall"
)

// Var is one setting: TENDER_<Name> in the environment, --<name> on the command line.
type Var struct {
	Name    string // e.g. KILL_GRACE
	Default string
	Section string
	Help    string
	// Set parses s into c. given is false when s is the default. The error says what is
	// accepted; Load adds the name and the value.
	Set func(c *Config, s string, given bool) error
}

func (v Var) env() string  { return Prefix + v.Name }
func (v Var) flag() string { return strings.ToLower(strings.ReplaceAll(v.Name, "_", "-")) }

// Flag is the command-line form of the setting, with its dashes.
func (v Var) Flag() string { return "--" + v.flag() }

// Env is the environment form of the setting.
func (v Var) Env() string { return v.env() }

type varTable []Var

func (t varTable) byName(name string) Var {
	for _, v := range t {
		if v.Name == name {
			return v
		}
	}
	panic("config: no variable " + name)
}

// Vars lists every setting, in the order of the help text.
func Vars() []Var { return vars }

var vars = varTable{
	// Logging.
	{Name: "LOG_LEVEL", Default: "info", Section: "Logging",
		Help: "trace, debug, info, warn, error or off",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.LogLevel, err = parseWord(s, "trace", "debug", "info", "warn", "error", "off")
			return err
		}},
	{Name: "LOG_FORMAT", Default: "text", Section: "Logging",
		Help: "text or json",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.LogFormat, err = parseWord(s, "text", "json")
			return err
		}},

	// PID 1.
	{Name: "SIGNAL_TARGET", Default: "group", Section: "PID 1",
		Help: "group: forward signals to the child's process group; child: to the child alone",
		Set: func(c *Config, s string, _ bool) error {
			w, err := parseWord(s, "group", "child")
			c.SignalTarget = map[string]SignalTarget{"group": TargetGroup, "child": TargetChild}[w]
			return err
		}},
	{Name: "SIGNAL_REWRITE", Section: "PID 1",
		Help: "rewrite signals before forwarding, FROM:TO,... by number or name (15:3,INT:0); TO 0 drops",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.SignalRewrite, err = parseSignalRewrite(s)
			return err
		}},
	{Name: "KILL_GRACE", Default: "5s", Section: "PID 1",
		Help: "time between SIGTERM and SIGKILL for processes left when the main child exits (0 = at once)",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.KillGrace, err = parseDuration(s)
			return err
		}},
	{Name: "EXIT_REMAP", Section: "PID 1",
		Help: "remap exit statuses, FROM:TO,... (143:0 for Java's exit on SIGTERM)",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.ExitRemap, err = parseExitRemap(s)
			return err
		}},

	// Restarts.
	{Name: "RESTART", Section: "Restarts",
		Help: "always, on-failure or never (default: never with one worker, always in pool mode)",
		Set: func(c *Config, s string, given bool) error {
			if !given {
				return nil
			}
			w, err := parseWord(s, "never", "on-failure", "always")
			c.Restart = map[string]RestartPolicy{"never": RestartNever, "on-failure": RestartOnFailure, "always": RestartAlways}[w]
			c.RestartSet = true
			return err
		}},
	{Name: "MAX_RESTARTS", Default: "10", Section: "Restarts",
		Help: "quick crashes in a row before tender gives up and exits non-zero (0 = never give up)",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.MaxRestarts, err = parseCount(s, 0)
			return err
		}},
	{Name: "MIN_UPTIME", Default: "10s", Section: "Restarts",
		Help: "a process that lived this long was stable: it restarts at once, and the backoff and the count start afresh",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.MinUptime, err = parseDuration(s)
			return err
		}},
	{Name: "RESTART_DELAY", Default: "100ms", Section: "Restarts",
		Help: "delay before restarting after a quick crash; it doubles with each quick crash in a row",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.RestartDelay, err = parseDuration(s)
			return err
		}},
	{Name: "RESTART_DELAY_MAX", Default: "10s", Section: "Restarts",
		Help: "the cap of the restart delay",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.RestartDelayMax, err = parseDuration(s)
			return err
		}},

	// OOM and the clean start.
	{Name: "OOM_SCORE_ADJ", Default: "-1000", Section: "OOM and the clean start of apps",
		Help: "the oom_score_adj tender asks for itself, -1000..1000, or off",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.OOMScoreAdj, err = parseOOMScore(s)
			return err
		}},
	{Name: "APP_OOM_SCORE_ADJ", Section: "OOM and the clean start of apps",
		Help: "the apps' oom_score_adj: absolute (-1000..1000) or +N above tender's original (default: the original)",
		Set: func(c *Config, s string, given bool) (err error) {
			if given {
				c.AppOOMScoreAdj, err = parseAppOOM(s)
			}
			return err
		}},
	{Name: "APP_USER", Section: "OOM and the clean start of apps",
		Help: "run apps as user[:group], by name or number",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.AppUser, err = parseUser(s)
			return err
		}},
	{Name: "APP_CAPS", Section: "OOM and the clean start of apps",
		Help: "capabilities apps keep, OCI names (CAP_NET_BIND_SERVICE,...) or none; the rest are dropped from every set",
		Set: func(c *Config, s string, given bool) (err error) {
			if given {
				c.AppCaps, err = parseCaps(s)
			}
			return err
		}},
	{Name: "APP_NOFILE", Section: "OOM and the clean start of apps",
		Help: "the apps' RLIMIT_NOFILE: N, or SOFT:HARD",
		Set: func(c *Config, s string, given bool) (err error) {
			if given {
				c.AppNofile, err = parseRlimit(s)
			}
			return err
		}},
	{Name: "APP_NO_NEW_PRIVS", Default: "false", Section: "OOM and the clean start of apps",
		Help: "set no_new_privs for apps (true/false)",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.AppNoNewPrivs, err = parseBool(s)
			return err
		}},

	// Pool.
	{Name: "WORKERS", Default: "1", Section: "Pool",
		Help: "copies of COMMAND to run, or auto: one per CPU tender may use (its cgroup's CPU quota, rounded up, within its CPU affinity); more than 1, or auto, turns on pool mode; with a Procfile, web's count unless TENDER_FORMATION names web",
		Set: func(c *Config, s string, given bool) (err error) {
			c.WorkersSet = given
			if strings.EqualFold(s, "auto") {
				c.Workers, c.WorkersAuto = 1, true
				return nil
			}
			c.Workers, err = parseCount(s, 1)
			if err != nil {
				err = errors.New("want a whole number >= 1, or auto")
			}
			return err
		}},
	{Name: "START_TIMEOUT", Default: "60s", Section: "Pool",
		Help: "how long a worker may take to accept on $PORT or send READY=1",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.StartTimeout, err = parsePositiveDuration(s)
			return err
		}},
	{Name: "SHUTDOWN_DELAY", Default: "0", Section: "PID 1",
		Help: "on SIGTERM or SIGINT, report not ready at once and keep serving this long before stopping (a pool) or passing the signal on (one child), for the endpoints that still route to the container (Kubernetes)",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.ShutdownDelay, err = parseDuration(s)
			return err
		}},
	{Name: "STOP_TIMEOUT", Default: "8s", Section: "Pool",
		Help: "the whole graceful stop on SIGTERM: sessions drain, workers get SIGTERM, SIGKILL at the end",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.StopTimeout, err = parseDuration(s)
			return err
		}},
	{Name: "HEALTH_TIMEOUT", Default: "0", Section: "Pool",
		Help: "replace a ready worker that stopped answering on $PORT for this long (0 = off)",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.HealthTimeout, err = parseDuration(s)
			return err
		}},
	{Name: "MEMORY_LIMIT", Default: "0", Section: "Pool",
		Help: "recycle a worker whose RSS grows past this (512MiB, 1G, bytes; 0 = off)",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.MemoryLimit, err = parseSize(s)
			return err
		}},
	{Name: "MAX_REQUESTS", Default: "0", Section: "Pool",
		Help: "recycle a worker after this many sessions (0 = off)",
		Set: func(c *Config, s string, _ bool) (err error) {
			n, err := parseCount(s, 0)
			c.MaxRequests = uint64(n)
			return err
		}},
	{Name: "MAX_REQUESTS_JITTER", Default: "0", Section: "Pool",
		Help: "each worker's TENDER_MAX_REQUESTS is the limit plus a random 0 to this many, so that workers started together are not recycled together (gunicorn's max_requests_jitter)",
		Set: func(c *Config, s string, _ bool) (err error) {
			n, err := parseCount(s, 0)
			c.MaxRequestsJitter = uint64(n)
			return err
		}},
	{Name: "MAX_LIFETIME", Default: "0", Section: "Pool",
		Help: "recycle a worker once it is this old, plus a random part of up to a tenth of it (0 = off)",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.MaxLifetime, err = parseDuration(s)
			return err
		}},
	{Name: "STOP_SIGNAL", Default: "TERM", Section: "Pool",
		Help: "the signal that asks a worker to stop, in graceful stops, recycling and rolling restarts: QUIT for nginx and unicorn, INT for others (SIGKILL follows after TENDER_KILL_GRACE)",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.StopSignal, err = ParseSignal(s)
			if err == nil && (c.StopSignal == syscall.SIGKILL || c.StopSignal == syscall.SIGSTOP) {
				err = errors.New("want a signal a worker can catch, not KILL or STOP: SIGKILL comes anyway after TENDER_KILL_GRACE")
			}
			return err
		}},
	{Name: "WATCHDOG", Default: "0", Section: "Pool",
		Help: "give workers WATCHDOG_USEC of this, and replace one that sent WATCHDOG=1 on NOTIFY_SOCKET and then fell silent for this long, as systemd does (0 = off)",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.Watchdog, err = parseDuration(s)
			return err
		}},

	// Several programs.
	{Name: "PROCFILE", Section: "Several programs",
		Help: "run every process type of this Procfile (name: command lines) instead of a COMMAND; web is the type behind TENDER_LISTEN",
		Set: func(c *Config, s string, _ bool) error {
			c.Procfile = s
			return nil
		}},
	{Name: "FORMATION", Section: "Several programs",
		Help: "how many processes of each Procfile type run: web=4,worker=2; all=N sets the rest (default 1 each)",
		Set: func(c *Config, s string, _ bool) error {
			c.Formation = s // checked against the Procfile's types once it is read
			return nil
		}},
	{Name: "ENV_FILE", Section: "Several programs",
		Help: "KEY=VALUE lines (docker run --env-file's and foreman's .env) added to every app's environment",
		Set: func(c *Config, s string, _ bool) error {
			c.EnvFile = s
			return nil
		}},
	{Name: "OUTPUT_LABELS", Default: "on", Section: "Several programs",
		Help: "on: each line of the apps' output starts with its process, web.0 | (a pool or Procfile of more than one process); off: as written",
		Set: func(c *Config, s string, _ bool) error {
			w, err := parseWord(s, "on", "off")
			c.OutputLabels = w == "on"
			return err
		}},

	// Balancer.
	{Name: "LISTEN", Section: "Balancer",
		Help: "the front socket: :8080, 127.0.0.1:8080 or unix:/path; turns on pool mode",
		Set: func(c *Config, s string, given bool) (err error) {
			if given {
				c.Listen, err = parseAddress(s)
			}
			return err
		}},
	{Name: "PROTOCOL", Default: "http", Section: "Balancer",
		Help: "http: a session is one request; tcp: a session is one connection",
		Set: func(c *Config, s string, _ bool) error {
			w, err := parseWord(s, "http", "tcp")
			c.Protocol = map[string]Protocol{"http": ProtocolHTTP, "tcp": ProtocolTCP}[w]
			return err
		}},
	{Name: "CONCURRENCY", Default: "0", Section: "Balancer",
		Help: "sessions one worker takes at once (0 = unlimited)",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.Concurrency, err = parseCount(s, 0)
			return err
		}},
	{Name: "QUEUE_SIZE", Default: "100", Section: "Balancer",
		Help: "sessions that may wait for a free worker",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.QueueSize, err = parseCount(s, 0)
			return err
		}},
	{Name: "QUEUE_TIMEOUT", Default: "30s", Section: "Balancer",
		Help: "how long a session waits in the queue before 503 (http) or close (tcp)",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.QueueTimeout, err = parseDuration(s)
			return err
		}},
	{Name: "HEADER_TIMEOUT", Default: "10s", Section: "Balancer",
		Help: "how long a client may take to send a request's headers",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.HeaderTimeout, err = parsePositiveDuration(s)
			return err
		}},
	{Name: "CLIENT_TIMEOUT", Default: "60s", Section: "Balancer",
		Help: "how long a client may stay silent while sending a body, idle between requests, or not reading its response",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.ClientTimeout, err = parsePositiveDuration(s)
			return err
		}},
	{Name: "BODY_MIN_RATE", Default: "500", Section: "Balancer",
		Help: "the lowest average rate of a request body, bytes a second (500, 1KiB; 0 = off): a client that falls the client timeout behind it gets 408",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.BodyMinRate, err = parseRate(s)
			return err
		}},
	{Name: "UNDERSCORES_IN_HEADERS", Default: "false", Section: "Balancer",
		Help: "pass on request headers whose names have _ (true/false; nginx's underscores_in_headers), but never those that read as Content-Length, Transfer-Encoding, Connection or X-Forwarded-* with - for _",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.Underscores, err = parseBool(s)
			return err
		}},
	{Name: "WORKER_TIMEOUT", Default: "0", Section: "Balancer",
		Help: "how long a worker may stay silent once it has the whole request, or leave it unread (http; 0 = off): before its answer, 504; within it, the client is cut off",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.WorkerTimeout, err = parseDuration(s)
			return err
		}},

	{Name: "ACCESS_LOG", Default: "off", Section: "Balancer",
		Help: "on: one log line per request (http) or connection (tcp), in the log's format, whatever TENDER_LOG_LEVEL; off",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.AccessLog, err = parseBool(s)
			if err != nil {
				err = errors.New("want on or off")
			}
			return err
		}},

	// Control.
	{Name: "CONTROL", Section: "Status and control",
		Help: "the control socket's path, or off (default: /run/tender, then $XDG_RUNTIME_DIR/tender, then /tmp/tender-UID)",
		Set: func(c *Config, s string, _ bool) (err error) {
			c.Control, err = parseControl(s)
			return err
		}},
	{Name: "ADMIN", Section: "Status and control",
		Help: "serve /healthz, /metrics and /status on this address (off by default)",
		Set: func(c *Config, s string, given bool) (err error) {
			if given && s != "off" {
				c.Admin, err = parseAddress(s)
			}
			return err
		}},
}
