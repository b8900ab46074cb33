package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/tenderinit/tender/apps"
	"github.com/tenderinit/tender/config"
	"github.com/tenderinit/tender/procfile"
)

// appFiles is what tender read of the apps before starting anything: a Procfile's process
// types with their formation, and an env file's variables.
type appFiles struct {
	types     []procfile.Type // nil without a Procfile
	formation procfile.Formation
	env       []string // the env file's KEY=VALUE entries, for every app's environment
}

// readAppFiles reads TENDER_ENV_FILE and TENDER_PROCFILE, and checks TENDER_FORMATION and
// TENDER_LISTEN against the Procfile's types. An error names the file and the line, or the
// variable and its value. Relative paths are from the directory tender was started in, so it
// runs before tender leaves it.
func readAppFiles(cfg *config.Config) (*appFiles, error) {
	a := &appFiles{}
	if cfg.EnvFile != "" {
		f, err := os.Open(cfg.EnvFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read TENDER_ENV_FILE: %w", err)
		}
		defer f.Close()
		if a.env, err = procfile.ParseEnv(f, cfg.EnvFile, os.Environ()); err != nil {
			return nil, err
		}
	}
	if cfg.Procfile == "" {
		return a, nil
	}
	f, err := os.Open(cfg.Procfile)
	if err != nil {
		return nil, fmt.Errorf("cannot read TENDER_PROCFILE: %w", err)
	}
	defer f.Close()
	if a.types, err = procfile.Parse(f, cfg.Procfile); err != nil {
		return nil, err
	}
	if a.formation, err = procfile.ParseFormation(cfg.Formation, a.types); err != nil {
		return nil, fmt.Errorf("invalid TENDER_FORMATION=%q: %v", cfg.Formation, err)
	}
	names := make([]string, len(a.types))
	for i, t := range a.types {
		names[i] = t.Name
	}
	if cfg.Listen != nil && !slices.Contains(names, procfile.Web) {
		return nil, fmt.Errorf("TENDER_LISTEN=%s needs a process type web in %s to balance over; it has %s",
			cfg.Listen, cfg.Procfile, strings.Join(names, ", "))
	}
	running := 0 // the release phase alone would run and leave nothing running
	for _, t := range a.poolTypes(cfg) {
		if t.Name != procfile.Release {
			running += t.Count
		}
	}
	if running == 0 && cfg.Formation == "" {
		return nil, fmt.Errorf("%s has no process type but release, which runs before the others: nothing would run after it", cfg.Procfile)
	}
	if running == 0 {
		return nil, fmt.Errorf("invalid TENDER_FORMATION=%q: it runs no process of %s's types (%s)",
			cfg.Formation, cfg.Procfile, strings.Join(names, ", "))
	}
	return a, nil
}

// poolTypes are the process types the pool runs: the Procfile's, in its order, each with its
// count (TENDER_WORKERS counts web when the formation does not), or without a Procfile one
// type, web, running COMMAND as TENDER_WORKERS workers. A type counted 0 runs nothing until
// it is scaled.
func (a *appFiles) poolTypes(cfg *config.Config) []apps.TypeConfig {
	if a.types == nil {
		return []apps.TypeConfig{{Name: procfile.Web, Args: cfg.Command, Count: cfg.Workers}}
	}
	var out []apps.TypeConfig
	for _, t := range a.types {
		n := a.formation.Count(t.Name)
		if _, named := a.formation.Counts[t.Name]; t.Name == procfile.Web && !named && cfg.WorkersSet {
			n = cfg.Workers
		}
		out = append(out, apps.TypeConfig{Name: t.Name, Command: t.Command, Count: n})
	}
	return out
}
