// Package procfile reads what tender runs when it runs several programs: a Procfile (Heroku's
// `name: command` lines), a formation (`web=4,worker=2`, foreman's), an env file (`KEY=VALUE`
// lines, as docker run --env-file and foreman's .env), and the commands themselves, which tender
// runs without a shell when they need none.
package procfile

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Process types with a meaning of their own.
const (
	// Web is the type behind TENDER_LISTEN, the balancer's front socket.
	Web = "web"
	// Release runs once, alone and to completion, before any other type starts (Heroku's
	// release phase).
	Release = "release"
)

// Type is one line of a Procfile: a process type and its command.
type Type struct {
	Name    string
	Command string
	Line    int // where it was found, for messages
}

// Error is a problem in a file, at a line.
type Error struct {
	File string
	Line int // 0 for the file as a whole
	Msg  string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
}

var typeName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Parse reads a Procfile: `name: command` lines, names of letters, digits, _ and -, each name
// once; blank lines and lines starting with # are skipped. file names the file in errors.
func Parse(r io.Reader, file string) ([]Type, error) {
	var types []Type
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, command, ok := strings.Cut(line, ":")
		name, command = strings.TrimSpace(name), strings.TrimSpace(command)
		switch {
		case !ok:
			return nil, &Error{file, n, fmt.Sprintf("want name: command, got %q", line)}
		case !typeName.MatchString(name):
			return nil, &Error{file, n, fmt.Sprintf("process type %q: want letters, digits, _ and - only", name)}
		case command == "":
			return nil, &Error{file, n, fmt.Sprintf("process type %s has no command", name)}
		case seen[name] > 0:
			return nil, &Error{file, n, fmt.Sprintf("process type %s again (first on line %d)", name, seen[name])}
		}
		seen[name] = n
		types = append(types, Type{Name: name, Command: command, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, &Error{file, 0, err.Error()}
	}
	if len(types) == 0 {
		return nil, &Error{file, 0, "no process type: want name: command lines"}
	}
	return types, nil
}

// Formation is how many processes of each type run: foreman's --formation.
type Formation struct {
	Default int            // the count of a type not named (all=N), 1 unless set
	Counts  map[string]int // the types named
}

// Count is how many processes of typ run. The release type runs once, unless its count is 0.
func (f Formation) Count(typ string) int {
	if n, ok := f.Counts[typ]; ok {
		return n
	}
	if typ == Release {
		return 1
	}
	return f.Default
}

// ParseFormation reads `web=4,worker=2`, where all=N sets the count of every type not named.
// A type that is not among types is an error, and so is a release count other than 0 or 1:
// the release phase runs once.
func ParseFormation(s string, types []Type) (Formation, error) {
	f := Formation{Default: 1, Counts: map[string]int{}}
	if strings.TrimSpace(s) == "" {
		return f, nil
	}
	known := map[string]bool{"all": true}
	var names []string
	for _, t := range types {
		known[t.Name] = true
		names = append(names, t.Name)
	}
	for _, part := range strings.Split(s, ",") {
		name, count, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(strings.TrimSpace(count))
		name = strings.TrimSpace(name)
		switch {
		case !ok || err != nil || n < 0:
			return f, fmt.Errorf("%q: want TYPE=N with N >= 0, like web=4,worker=2", part)
		case !known[name]:
			return f, fmt.Errorf("%q: no process type %s in the Procfile (it has %s; all=N sets every type)", part, name, strings.Join(names, ", "))
		case name == Release && n > 1:
			return f, fmt.Errorf("%q: the release type runs once (1) or not at all (0)", part)
		case name == "all":
			f.Default = n
		default:
			f.Counts[name] = n
		}
	}
	return f, nil
}
