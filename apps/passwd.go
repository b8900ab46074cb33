package apps

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// The files TENDER_APP_USER is looked up in.
const (
	passwdFile = "/etc/passwd"
	groupFile  = "/etc/group"
)

// maxID is the highest uid or gid an app may run as: 2^32-1 is (uid_t)-1, which setresuid and
// setresgid take for "leave it as it is", so a user given it would keep tender's (root's).
const maxID = 1<<32 - 2

// dbLine is one line of /etc/passwd or /etc/group, split into its fields, with where it was
// found, so that an error can name it.
type dbLine struct {
	file   string
	number int
	fields []string
}

func (l dbLine) errorf(format string, args ...any) error {
	return fmt.Errorf("%s line %d: %s", l.file, l.number, fmt.Sprintf(format, args...))
}

// id reads the uid or gid in field i. A malformed one is an error, never a 0: the parse error
// that used to be dropped here ran the apps of a `neg:x:-1:-1` user as root.
func (l dbLine) id(i int, what string) (uint32, error) {
	if i >= len(l.fields) {
		return 0, l.errorf("no %s field (%d fields)", what, len(l.fields))
	}
	n, err := parseID(l.fields[i])
	if err != nil {
		return 0, l.errorf("%s %v", what, err)
	}
	return n, nil
}

// parseID reads a uid or gid: decimal digits only, from 0 to maxID.
func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32) // no sign, no spaces, not empty
	if err != nil || n > maxID {
		return 0, fmt.Errorf("%q is not a number from 0 to %d", s, uint64(maxID))
	}
	return uint32(n), nil
}

// readDB reads the lines of /etc/passwd or /etc/group, skipping comments, blank lines and NIS
// entries (+ and -), as glibc does. A missing file is empty: a scratch image has none, and
// numeric users need none.
func readDB(path string) ([]dbLine, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []dbLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 1<<20) // a group with many members makes a long line
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' || text[0] == '+' || text[0] == '-' {
			continue
		}
		lines = append(lines, dbLine{file: path, number: n, fields: strings.Split(text, ":")})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return lines, nil
}

// findByName is the first line whose first field is name, as getpwnam and getgrnam take it.
func findByName(lines []dbLine, name string) (dbLine, bool) {
	for _, l := range lines {
		if name != "" && l.fields[0] == name {
			return l, true
		}
	}
	return dbLine{}, false
}

// findByID is the first line whose field i holds id. Lines whose field is malformed cannot
// be that id's, and are passed over.
func findByID(lines []dbLine, i int, id uint32) (dbLine, bool) {
	for _, l := range lines {
		if i < len(l.fields) {
			if n, err := parseID(l.fields[i]); err == nil && n == id {
				return l, true
			}
		}
	}
	return dbLine{}, false
}
