package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Each parser returns an error that says what is accepted; Load names the variable and value.

func parseWord(s string, words ...string) (string, error) {
	w := strings.ToLower(s)
	if w == "warning" {
		w = "warn"
	}
	for _, ok := range words {
		if w == ok {
			return w, nil
		}
	}
	return words[0], fmt.Errorf("want one of %s", strings.Join(words, ", "))
}

func parseCount(s string, least int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < least {
		return least, fmt.Errorf("want a whole number >= %d", least)
	}
	return n, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off", "":
		return false, nil
	}
	return false, errors.New("want true or false")
}

// parseDuration takes a Go duration (5s, 500ms, 1m30s) or a whole number of seconds.
func parseDuration(s string) (time.Duration, error) {
	const accept = "want a duration like 5s, 500ms or 1m30s (a bare number is seconds), not negative"
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New(accept)
	}
	return d, nil
}

func parsePositiveDuration(s string) (time.Duration, error) {
	d, err := parseDuration(s)
	if err == nil && d == 0 {
		err = errors.New("want a duration above 0, like 5s or 500ms")
	}
	return d, err
}

var sizeUnits = map[string]uint64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// parseSize takes bytes with an optional unit: 512MiB, 512M and 512m are 512*2^20, 512MB is
// 512*10^6 (Docker's --memory reads 512m the same way).
func parseSize(s string) (uint64, error) {
	accept := errors.New("want a size like 512MiB, 512M, 1G or a number of bytes (0 = off)")
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	}
	mult, ok := sizeUnits[unit]
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || f < 0 || f*float64(mult) >= math.MaxInt64 {
		return 0, accept
	}
	return uint64(f * float64(mult)), nil
}

// parseRate takes bytes a second, with the units of parseSize: 500, 1KiB, 0 = off.
func parseRate(s string) (int64, error) {
	n, err := parseSize(s)
	if err != nil || n > 1<<40 {
		return 0, errors.New("want bytes a second like 500 or 1KiB, at most 1TiB (0 = off)")
	}
	return int64(n), nil
}

func parseOOMScore(s string) (*int, error) {
	if strings.EqualFold(s, "off") {
		return nil, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < -1000 || n > 1000 {
		return nil, errors.New("want a number from -1000 to 1000, or off")
	}
	return &n, nil
}

func parseAppOOM(s string) (*OOMAdj, error) {
	if rel, ok := strings.CutPrefix(s, "+"); ok {
		n, err := strconv.Atoi(rel)
		if err != nil || n < 0 || n > 2000 {
			return nil, errors.New("want +N with N from 0 to 2000, or a number from -1000 to 1000")
		}
		return &OOMAdj{Value: n, Relative: true}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < -1000 || n > 1000 {
		return nil, errors.New("want a number from -1000 to 1000, or +N relative to tender's original score")
	}
	return &OOMAdj{Value: n}, nil
}

func parseUser(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	u, g, hasGroup := strings.Cut(s, ":")
	if u == "" || (hasGroup && g == "") || strings.ContainsAny(s, " \t\n/") {
		return "", errors.New("want user or user:group, by name or number")
	}
	return s, nil
}

func parseCaps(s string) ([]string, error) {
	caps := []string{}
	if strings.EqualFold(s, "none") {
		return caps, nil
	}
	for _, f := range strings.Split(s, ",") {
		name := strings.ToUpper(strings.TrimSpace(f))
		if !strings.HasPrefix(name, "CAP_") {
			name = "CAP_" + name
		}
		if !knownCap(name) {
			return nil, fmt.Errorf("unknown capability %q: want OCI names like CAP_NET_BIND_SERVICE, or none", f)
		}
		caps = append(caps, name)
	}
	return caps, nil
}

func parseRlimit(s string) (*Rlimit, error) {
	accept := errors.New("want N or SOFT:HARD with SOFT <= HARD (unlimited is allowed)")
	soft, hard, pair := strings.Cut(s, ":")
	if !pair {
		hard = soft
	}
	parse := func(v string) (uint64, error) {
		if strings.EqualFold(v, "unlimited") {
			return unix.RLIM_INFINITY, nil
		}
		return strconv.ParseUint(v, 10, 64)
	}
	sv, err1 := parse(soft)
	hv, err2 := parse(hard)
	if err1 != nil || err2 != nil || sv > hv {
		return nil, accept
	}
	return &Rlimit{Soft: sv, Hard: hv}, nil
}

func parseAddress(s string) (*Address, error) {
	accept := errors.New("want :PORT, HOST:PORT or unix:/absolute/path")
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		if !filepath.IsAbs(path) {
			return nil, accept
		}
		return &Address{Network: "unix", Addr: path}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return nil, accept
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || strings.ContainsAny(host, " /") {
		return nil, errors.New("want :PORT or HOST:PORT with PORT from 1 to 65535, or unix:/absolute/path")
	}
	return &Address{Network: "tcp", Addr: s}, nil
}

func parseControl(s string) (string, error) {
	if s == "" || s == "off" || filepath.IsAbs(s) {
		return s, nil
	}
	return "", errors.New("want an absolute path, or off")
}

func parseExitRemap(s string) (map[int]int, error) {
	accept := errors.New("want FROM:TO pairs of exit statuses 0..255, comma separated, like 143:0")
	m := map[int]int{}
	if s == "" {
		return m, nil
	}
	for _, pair := range strings.Split(s, ",") {
		from, to, ok := strings.Cut(strings.TrimSpace(pair), ":")
		f, err1 := strconv.Atoi(from)
		t, err2 := strconv.Atoi(to)
		if !ok || err1 != nil || err2 != nil || f < 0 || f > 255 || t < 0 || t > 255 {
			return nil, accept
		}
		m[f] = t
	}
	return m, nil
}

func parseSignalRewrite(s string) (map[syscall.Signal]syscall.Signal, error) {
	m := map[syscall.Signal]syscall.Signal{}
	if s == "" {
		return m, nil
	}
	for _, pair := range strings.Split(s, ",") {
		from, to, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if !ok {
			return nil, errors.New("want FROM:TO pairs of signals by number or name, like 15:3 or TERM:QUIT; TO 0 drops")
		}
		f, err := ParseSignal(from)
		if err != nil {
			return nil, err
		}
		if f == unix.SIGKILL || f == unix.SIGSTOP {
			return nil, fmt.Errorf("%s cannot be caught, so it cannot be rewritten", unix.SignalName(f))
		}
		t := syscall.Signal(0)
		if strings.TrimSpace(to) != "0" {
			if t, err = ParseSignal(to); err != nil {
				return nil, err
			}
		}
		m[f] = t
	}
	return m, nil
}

// ParseSignal reads a signal by number (15), name (TERM, SIGTERM, sigterm) or real-time
// offset (RTMIN+3, SIGRTMAX-1).
func ParseSignal(s string) (syscall.Signal, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	bad := fmt.Errorf("unknown signal %q: want a number from 1 to 64 or a name like TERM or RTMIN+1", s)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, bad
		}
		return syscall.Signal(n), nil
	}
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	for _, rt := range []struct {
		name string
		base int
		sign int
	}{{"SIGRTMIN+", 34, 1}, {"SIGRTMAX-", 64, -1}} {
		if off, ok := strings.CutPrefix(s, rt.name); ok {
			n, err := strconv.Atoi(off)
			if err != nil || n < 0 || n > 30 {
				return 0, bad
			}
			return syscall.Signal(rt.base + rt.sign*n), nil
		}
	}
	switch s {
	case "SIGRTMIN":
		return 34, nil
	case "SIGRTMAX":
		return 64, nil
	}
	if sig := unix.SignalNum(s); sig != 0 {
		return sig, nil
	}
	return 0, bad
}
