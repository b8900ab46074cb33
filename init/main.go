// Command tender is a tiny PID 1 for containers: it reaps zombies, forwards signals, passes
// the exit status on and ends every process left, and it can run the app as a supervised
// pool of workers behind one balanced front socket.
//
// main reads as the life of a container: read the configuration, make tender's own process
// safe (fds, OOM score, subreaper, signals), start the app, wait for it, end what is left and
// exit with the app's status.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/tenderinit/tender/apps"
	"github.com/tenderinit/tender/capabilities"
	"github.com/tenderinit/tender/config"
	"github.com/tenderinit/tender/reaper"
)

func main() {
	// The clean-start stage is tender re-executed inside a process about to become an app; it
	// must do nothing else before it execs the app.
	if len(os.Args) > 1 && os.Args[1] == apps.StageArg {
		apps.RunStage(os.Args)
	}

	cfg, err := config.Load(os.Args[1:], os.Environ())
	if err != nil {
		fmt.Fprintf(os.Stderr, "tender: %v\n", err)
		os.Exit(2)
	}
	switch cfg.Sub {
	case config.CmdHelp:
		printHelp(os.Stdout)
	case config.CmdVersion:
		fmt.Println("tender", version())
	default:
		os.Exit(run(cfg))
	}
}

// run is tender's life as PID 1 (or as a subreaper below some other PID 1).
func run(cfg *config.Config) int {
	log := newLogger(cfg)
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}

	// 1. Nothing tender inherited reaches the apps, except sockets passed to it on purpose.
	listenFds := keepOnlyPassedSockets(log)

	// 2. Remember the OOM score tender started with: the apps get it back.
	origOOM, oomErr := capabilities.OOMScoreAdjOf(0)

	// 3. Become the reaper of every orphan, and take over every signal.
	r := reaper.New(log)
	if os.Getpid() != 1 {
		if err := reaper.BecomeSubreaper(); err != nil {
			log.Warn("cannot register as child subreaper: orphans will not be reaped by tender", "error", err)
		} else {
			log.Debug("not PID 1: registered as child subreaper")
		}
	}
	signals := reaper.CatchSignals()

	spawner, env, err := newSpawner(cfg, r, listenFds, origOOM, oomErr, log)
	if err != nil {
		log.Error(err.Error())
		return 2
	}

	// 4. Start the app and stay with it until it is done.
	single := &apps.Single{
		Spawner: spawner,
		Forward: reaper.Forwarder{ToGroup: cfg.SignalTarget == config.TargetGroup, Rewrite: cfg.SignalRewrite, Log: log},
		Args:    cfg.Command,
		Env:     env,
		Restart: restartPolicy(cfg),
		Backoff: backoff(cfg),
		Log:     log,
	}
	// tender protects itself only once the app's stage is on its way: the app's score does not
	// depend on it, and the app starts sooner.
	go protectFromOOM(cfg, origOOM, oomErr, spawner.Base.OOMScoreAdj, log)
	code := single.Run(signals)

	// 5. End every process left, then pass the status on.
	r.EndAll(cfg.KillGrace)
	return cfg.RemapExit(code)
}

func newLogger(cfg *config.Config) hclog.Logger {
	level := hclog.LevelFromString(cfg.LogLevel)
	if cfg.LogLevel == "off" {
		level = hclog.Off
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       "tender",
		Level:      level,
		Output:     os.Stderr,
		JSONFormat: cfg.LogFormat == "json",
	})
}

// keepOnlyPassedSockets marks every inherited fd close-on-exec except the sockets passed by
// socket activation (LISTEN_FDS, meant for us when LISTEN_PID is our pid), which the apps
// receive at the same numbers. It returns how many there are.
func keepOnlyPassedSockets(log hclog.Logger) int {
	n := capabilities.SocketActivation()
	if log.IsDebug() {
		if inherited := capabilities.InheritedFds(); len(inherited) > n {
			log.Debug("hiding inherited file descriptors from the apps", "fds", inherited[n:])
		}
	}
	if err := capabilities.CloseOnExecFrom(3 + n); err != nil {
		log.Warn("cannot mark inherited file descriptors close-on-exec: apps may see them", "error", err)
	}
	return n
}
