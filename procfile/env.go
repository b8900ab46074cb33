package procfile

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseEnv reads an env file: KEY=VALUE lines, as docker run --env-file and foreman's .env
// take them. Blank lines and lines starting with # are skipped; an `export ` before the key is
// allowed; a value wrapped in matching quotes loses them (foreman's .env), and is otherwise
// kept as it is, spaces and all (docker's). A line with a key alone takes the value of that
// variable from environ, and is skipped when environ has none (docker's rule). file names the
// file in errors. The result is KEY=VALUE entries, in the file's order.
func ParseEnv(r io.Reader, file string, environ []string) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		key, value, hasValue := strings.Cut(strings.TrimLeft(line, " \t"), "=")
		key = strings.TrimSpace(strings.TrimPrefix(key, "export "))
		if !envName.MatchString(key) {
			return nil, &Error{file, n, fmt.Sprintf("want KEY=VALUE with KEY of letters, digits and _, got %q", line)}
		}
		if !hasValue {
			if v, ok := lookup(environ, key); ok {
				out = append(out, key+"="+v)
			}
			continue
		}
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		out = append(out, key+"="+value)
	}
	if err := sc.Err(); err != nil {
		return nil, &Error{file, 0, err.Error()}
	}
	return out, nil
}

// lookup is the value of key in environ, the last one when there are several.
func lookup(environ []string, key string) (string, bool) {
	for i := len(environ) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(environ[i], key+"="); ok {
			return v, true
		}
	}
	return "", false
}
