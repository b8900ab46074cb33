// Command tender is a tiny PID 1 for containers: it reaps zombies, forwards signals, passes
// the exit status on and ends every process left, and it can run the app as a supervised
// pool of workers behind one balanced front socket.
//
// main reads as the life of a container: read the configuration, start the app's process,
// make tender's own process safe (signals, subreaper, fds, OOM score), let the app run, wait
// for it, end what is left and exit with the app's status.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/hashicorp/go-hclog"

	"github.com/tenderinit/tender/apps"
	"github.com/tenderinit/tender/capabilities"
	"github.com/tenderinit/tender/config"
	"github.com/tenderinit/tender/control"
	"github.com/tenderinit/tender/internal/sigrelay/early"
	"github.com/tenderinit/tender/reaper"
)

// Every signal tender forwards is caught already, in package early's init: main starts as an
// init, and gives the signals back to the Go runtime when it is asked for something else.
func main() {
	cfg, err := config.Load(os.Args[1:], os.Environ())
	if err != nil {
		fmt.Fprintf(os.Stderr, "tender: %v\n", err)
		if errors.Is(err, config.ErrUsage) {
			fmt.Fprintln(os.Stderr, config.Usage)
		}
		os.Exit(2)
	}
	if cfg.Sub != config.CmdRun {
		early.Release()
	}
	switch cfg.Sub {
	case config.CmdHelp:
		printHelp(os.Stdout)
	case config.CmdVersion:
		fmt.Println("tender", version())
	case config.CmdProbe:
		os.Exit(probe(cfg, os.Stdout))
	case config.CmdStatus, config.CmdRestart, config.CmdScale:
		os.Exit(controlCommand(cfg, os.Stdout))
	case config.CmdHealth:
		os.Exit(health(cfg, os.Stdout))
	default:
		os.Exit(run(cfg))
	}
}

// run is tender's life as PID 1 (or as a subreaper below some other PID 1).
func run(cfg *config.Config) int {
	keepHeapSmall()
	log := newLogger(cfg)

	// 0. What to run, read before anything starts: the Procfile and the env file.
	files, err := readAppFiles(cfg)
	if err != nil {
		log.Error(err.Error())
		return 2
	}

	// 1. Take over every signal, and become the reaper of every orphan. The OOM kill count is
	//    read in the background, beside the set-up below.
	oomKills := capabilities.WatchOOMKills()
	signals := reaper.CatchSignals()
	r := reaper.New(log, signals)
	if os.Getpid() != 1 {
		if err := reaper.BecomeSubreaper(); err != nil {
			log.Warn("cannot register as child subreaper: orphans will not be reaped by tender", "error", err)
		} else {
			log.Debug("not PID 1: registered as child subreaper")
		}
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}

	// 2. Nothing tender inherited reaches the apps, except sockets passed to it on purpose.
	//    tender leaves its start directory for /, where it keeps no volume busy; the apps
	//    start in it.
	spawner := &apps.Spawner{Reaper: r, ListenFds: capabilities.SocketActivation()}
	hideInheritedFds(spawner.ListenFds, log)
	spawner.Dir = leaveStartDir(log)

	// 3. The plan every app process follows: the OOM score tender started with (the apps get
	//    it back, or TENDER_APP_OOM_SCORE_ADJ), the user, capabilities and limits.
	origOOM, oomErr := capabilities.OOMScoreAdjOf(0)
	env, err := planApps(cfg, spawner, origOOM, oomErr, log)
	if err != nil {
		log.Error(err.Error())
		return 2
	}
	env = apps.WithEnv(env, files.env...)

	// 4. Run the app, and stay with it until it is done. tender protects itself from the OOM
	//    killer meanwhile (the apps' score does not depend on its own). It opens its control
	//    socket and catches the signals CatchSignals left for later (none on amd64 and arm64):
	//    in single mode once the app has started, so as not to take CPU from its start.
	oomDone := make(chan struct{})
	go func() {
		defer close(oomDone)
		protectFromOOM(cfg, origOOM, oomErr, spawner.Base.OOMScoreAdj, log)
	}()
	defer func() { <-oomDone }() // its line is said even when the app ends at once
	code, grace := 0, cfg.KillGrace
	if !cfg.Pool() {
		single := newSingle(cfg, spawner, env, log)
		single.OOM = oomKills
		started := make(chan struct{})
		single.Started = func() {
			close(started)
			signals.CatchRest()
		}
		defer serveControl(cfg, single, log, started)()
		defer serveAdmin(cfg, single, nil, log)()
		code = single.Run(signals.C())
	} else {
		go signals.CatchRest()
		if cfg.WorkersAuto {
			n, why := capabilities.UsableCPUs(oomKills.Cgroup()) // the cgroup the OOM watch read
			cfg.Workers = n
			log.Info("TENDER_WORKERS=auto: one worker per CPU", "workers", n, "from", why)
		}
		front, err := listenFront(cfg, log)
		if err != nil {
			log.Error(err.Error())
			return 2
		}
		var router apps.Router
		var timings control.MetricsWriter
		if front != nil {
			router, timings = front, front
		}
		pool, err := newPool(cfg, files.poolTypes(cfg), spawner, env, router, oomKills, log)
		if err != nil {
			log.Error(err.Error())
			return 2
		}
		defer serveControl(cfg, pool, log, nil)()
		defer serveAdmin(cfg, pool, timings, log)()
		code = pool.Run(signals.C())
		grace = min(grace, pool.Left())
	}

	// 5. End every process left, then pass the status on.
	r.EndAll(grace)
	return cfg.RemapExit(code)
}

// keepHeapSmall collects garbage at a quarter of the live heap rather than at all of it (and
// so from 1 MB rather than 4 MB on): tender's live heap is tiny, its garbage comes from
// restarts and logs, and the memory it holds is taken from the container's apps. GOGC, when
// set, still wins.
func keepHeapSmall() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
}

func newLogger(cfg *config.Config) hclog.Logger {
	level := hclog.LevelFromString(cfg.LogLevel)
	if cfg.LogLevel == "off" {
		level = hclog.Off
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       "tender",
		Level:      level,
		Output:     apps.Stderr,
		JSONFormat: cfg.LogFormat == "json",
	})
}

// newAccessLogger is the logger of TENDER_ACCESS_LOG, nil when it is off. Its lines go out with
// tender's own, in their format, at info level whatever TENDER_LOG_LEVEL says: a user who asks
// for an access log wants it also where tender's own lines are kept to warnings.
func newAccessLogger(cfg *config.Config) hclog.Logger {
	if !cfg.AccessLog {
		return nil
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       "tender.access",
		Level:      hclog.Info,
		Output:     apps.Stderr,
		JSONFormat: cfg.LogFormat == "json",
	})
}

// hideInheritedFds marks every inherited fd close-on-exec except the sockets passed by socket
// activation, which the apps receive at the same numbers. The clean start marks them again in
// every app process; doing it here too keeps them from anything else tender might run.
func hideInheritedFds(listenFds int, log hclog.Logger) {
	if log.IsDebug() {
		if inherited := capabilities.InheritedFds(); len(inherited) > listenFds {
			log.Debug("hiding inherited file descriptors from the apps", "fds", inherited[listenFds:])
		}
	}
	if err := capabilities.CloseOnExecFrom(3 + listenFds); err != nil {
		log.Warn("cannot mark inherited file descriptors close-on-exec", "error", err)
	}
}

// leaveStartDir moves tender to / and returns the directory it leaves, for the apps to start
// in, as dumb-init does: a volume tender was started in can then be unmounted once the apps
// are done with it. "" when tender stays where it is (already at /, or its directory is gone).
func leaveStartDir(log hclog.Logger) string {
	wd, err := os.Getwd()
	if err != nil || wd == "/" {
		return ""
	}
	if err := os.Chdir("/"); err != nil {
		log.Debug("cannot leave the start directory for /", "dir", wd, "error", err)
		return ""
	}
	return wd
}
