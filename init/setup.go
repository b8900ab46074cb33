package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/tenderinit/tender/apps"
	"github.com/tenderinit/tender/balancer"
	"github.com/tenderinit/tender/capabilities"
	"github.com/tenderinit/tender/config"
	"github.com/tenderinit/tender/reaper"
)

// planApps turns the app settings into the plan that every app process's clean start follows,
// and returns the environment the apps get.
func planApps(cfg *config.Config, spawner *apps.Spawner, origOOM int, oomErr error, log hclog.Logger) ([]string, error) {
	plan := &spawner.Base
	plan.NoNewPrivileges = cfg.AppNoNewPrivs
	switch {
	case cfg.AppOOMScoreAdj != nil:
		a := cfg.AppOOMScoreAdj
		score := a.Resolve(origOOM)
		plan.OOMScoreAdj = &score
		if a.Relative && score != origOOM+a.Value {
			log.Info("the apps' oom_score_adj is capped to the kernel's range", "TENDER_APP_OOM_SCORE_ADJ", fmt.Sprintf("%+d", a.Value), "original", origOOM, "apps", score)
		}
	case oomErr == nil:
		plan.OOMScoreAdj = &origOOM
	default:
		// Without a readable /proc tender cannot change its own score either, so the apps
		// inherit the original untouched.
		log.Debug("cannot read oom_score_adj; apps inherit tender's", "error", oomErr)
	}

	env := os.Environ()
	if cfg.AppUser != "" {
		u, err := apps.LookupUser(cfg.AppUser)
		if err != nil {
			return nil, fmt.Errorf("invalid TENDER_APP_USER=%q: %v", cfg.AppUser, err)
		}
		plan.User = &u.User
		env = u.Env(env)
	}
	if cfg.AppCaps != nil {
		keep := cfg.AppCaps
		plan.Capabilities = &specs.LinuxCapabilities{
			Bounding: keep, Effective: keep, Permitted: keep, Inheritable: keep, Ambient: keep,
		}
	}
	if cfg.AppNofile != nil {
		plan.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: cfg.AppNofile.Soft, Hard: cfg.AppNofile.Hard}}
	}
	return env, nil
}

// newSingle makes the runner of one child in the foreground, tini's way.
func newSingle(cfg *config.Config, spawner *apps.Spawner, env []string, log hclog.Logger) *apps.Single {
	return &apps.Single{
		Spawner: spawner,
		Env:     env,
		Forward: &reaper.Forwarder{Reaper: spawner.Reaper, ToGroup: cfg.SignalTarget == config.TargetGroup, Rewrite: cfg.SignalRewrite, Log: log},
		Args:    cfg.Command,
		Policy:  restartPolicy(cfg),
		Backoff: backoff(cfg),
		Log:     log,

		ShutdownDelay: cfg.ShutdownDelay,
	}
}

// listenFront opens TENDER_LISTEN, the balancer's front socket, before any worker starts, so
// that an address in use stops tender at once. Without TENDER_LISTEN there is no balancer.
func listenFront(cfg *config.Config, log hclog.Logger) (*balancer.Balancer, error) {
	if cfg.Listen == nil {
		return nil, nil
	}
	b, err := balancer.Listen(balancer.Config{
		Network:       cfg.Listen.Network,
		Addr:          cfg.Listen.Addr,
		HTTP:          cfg.Protocol == config.ProtocolHTTP,
		Concurrency:   cfg.Concurrency,
		QueueSize:     cfg.QueueSize,
		QueueTimeout:  cfg.QueueTimeout,
		HeaderTimeout: cfg.HeaderTimeout,
		ClientTimeout: cfg.ClientTimeout,
		BodyMinRate:   cfg.BodyMinRate,
		Underscores:   cfg.Underscores,
		WorkerTimeout: cfg.WorkerTimeout,
		AccessLog:     newAccessLogger(cfg),
	}, log)
	if err != nil {
		return nil, err
	}
	log.Info("balancing sessions", "listen", cfg.Listen.String(), "protocol", cfg.Protocol.String(), "concurrency", cfg.Concurrency)
	go b.Serve()
	return b, nil
}

// newPool makes the pool of workers.
func newPool(cfg *config.Config, types []apps.TypeConfig, spawner *apps.Spawner, env []string, router apps.Router, oom *capabilities.OOMWatch, log hclog.Logger) (*apps.Pool, error) {
	return apps.NewPool(apps.PoolConfig{
		Types:         types,
		Env:           env,
		StartTimeout:  cfg.StartTimeout,
		StopTimeout:   cfg.StopTimeout,
		KillGrace:     cfg.KillGrace,
		HealthTimeout: cfg.HealthTimeout,
		ShutdownDelay: cfg.ShutdownDelay,
		HealthHTTP:    cfg.Listen != nil && cfg.Protocol == config.ProtocolHTTP,
		MemoryLimit:   cfg.MemoryLimit,
		MaxRequests:   cfg.MaxRequests,

		MaxRequestsJitter: cfg.MaxRequestsJitter,
		MaxLifetime:       cfg.MaxLifetime,
		StopSignal:        cfg.StopSignal,
		Watchdog:          cfg.Watchdog,
		Restart:           restartPolicy(cfg),
		Backoff:           backoff(cfg),
		OOM:               oom,
		OutputLabels:      cfg.OutputLabels && manyProcesses(types),
		OutputJSON:        cfg.LogFormat == "json",
	}, spawner, router, log)
}

// manyProcesses says whether the pool starts more than one app process, of one type or more:
// the lines of a lone worker need no label to say whose they are, as in single mode.
func manyProcesses(types []apps.TypeConfig) bool {
	n := 0
	for _, t := range types {
		n += t.Count
	}
	return len(types) > 1 || n > 1
}

// protectFromOOM asks for tender's own oom_score_adj and says in one short line what it asked
// and what it got; where the kernel refused, the line points to `tender probe`, which tells
// why and what to change (the same story, at debug level here). It is never fatal.
func protectFromOOM(cfg *config.Config, orig int, origErr error, appScore *int, log hclog.Logger) {
	if cfg.OOMScoreAdj == nil {
		log.Debug("leaving tender's oom_score_adj alone (TENDER_OOM_SCORE_ADJ=off)")
		return
	}
	if origErr != nil {
		log.Warn("OOM protection is off: cannot read oom_score_adj", "error", origErr)
		return
	}
	res := capabilities.LowerOOMScoreAdj(*cfg.OOMScoreAdj)
	apps := orig
	if appScore != nil {
		apps = *appScore
	}
	args := []any{"asked", res.Asked, "got", res.Got}
	if apps != res.Got {
		args = append(args, "apps", apps)
	}
	switch {
	case res.Err == nil:
		log.Info("OOM protection: tender has the oom_score_adj it asked for", args...)
		return
	case res.Refused() && res.Got >= res.Original && apps <= res.Got:
		// Nothing gained: the container's minimum is the score tender started with, and the
		// apps are no likelier victims than tender. Docker's default container, every start.
		log.Info("OOM protection is unavailable without CAP_SYS_RESOURCE (see tender probe)", args...)
	case res.Refused():
		log.Info("OOM protection is partial without CAP_SYS_RESOURCE (see tender probe)", args...)
	default:
		log.Warn("OOM protection failed: tender keeps its original oom_score_adj", append(args, "error", res.Err)...)
		return
	}
	log.Debug("OOM protection", "original", res.Original, "apps", apps,
		"why", "the kernel refuses lower scores without CAP_SYS_RESOURCE", "remedy", capabilities.OOMAdvice(res.Got, apps))
}

// restartPolicy is TENDER_RESTART, or by default: never for a single child (tini's
// behaviour: the container ends with it), always for a pool.
func restartPolicy(cfg *config.Config) config.RestartPolicy {
	if !cfg.RestartSet && cfg.Pool() {
		return config.RestartAlways
	}
	return cfg.Restart
}

func backoff(cfg *config.Config) apps.Backoff {
	return apps.Backoff{Delay: cfg.RestartDelay, Max: cfg.RestartDelayMax, MinUptime: cfg.MinUptime, MaxRestarts: cfg.MaxRestarts}
}
