package config

import (
	"errors"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary values to every variable and flag: Load must never panic, and a
// failure must be a usage error or an *Error naming a known variable or flag, on one line.
func FuzzLoad(f *testing.F) {
	for _, seed := range []struct{ name, value string }{
		{"KILL_GRACE", "5s"}, {"SIGNAL_REWRITE", "15:3,2:0"}, {"EXIT_REMAP", "143:0"},
		{"MEMORY_LIMIT", "512MiB"}, {"LISTEN", "unix:/x"}, {"APP_OOM_SCORE_ADJ", "+500"},
		{"APP_NOFILE", "1:2"}, {"APP_CAPS", "CAP_CHOWN"}, {"WORKERS", "99999999999999999999"},
		{"SIGNAL_REWRITE", "RTMIN+1:0,,:"}, {"MEMORY_LIMIT", "1e400"}, {"LISTEN", "[::1]:0"},
	} {
		f.Add(seed.name, seed.value, false)
		f.Add(seed.name, seed.value, true)
	}
	names := map[string]bool{}
	for _, v := range vars {
		names[v.env()] = true
		names[v.Flag()] = true
	}
	f.Fuzz(func(t *testing.T, name, value string, asFlag bool) {
		if strings.ContainsAny(name+value, "\x00") {
			return
		}
		var args, env []string
		if asFlag {
			args = []string{"--" + strings.ToLower(strings.ReplaceAll(name, "_", "-")) + "=" + value}
		} else {
			env = []string{Prefix + name + "=" + value}
		}
		_, err := Load(append(args, "--", "app"), env)
		if err == nil || errors.Is(err, ErrUsage) {
			return
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("error of an unexpected kind: %v", err)
		}
		if !names[ce.Name] {
			t.Fatalf("error names %q, which is no variable or flag: %v", ce.Name, err)
		}
		if ce.Accept == "" || strings.Contains(ce.Accept, "\n") {
			t.Fatalf("error does not say what is accepted, on one line: %q", err)
		}
	})
}
