package apps

import (
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// AppUser is who the apps run as, resolved from /etc/passwd and /etc/group.
type AppUser struct {
	specs.User
	Home string
}

// LookupUser resolves "user[:group]", by name or number, the way `docker run --user` does: a
// number that /etc/passwd does not know is used as it is, with group 0 and HOME=/; a user's
// supplementary groups come from /etc/group. A malformed line that the answer would come from
// (a uid or gid that is empty, not a number, or out of range) is an error naming the file and
// the line: it is never read as 0, root.
func LookupUser(spec string) (*AppUser, error) {
	return lookupUser(spec, passwdFile, groupFile)
}

func lookupUser(spec, passwdPath, groupPath string) (*AppUser, error) {
	name, group, hasGroup := strings.Cut(spec, ":")
	passwd, err := readDB(passwdPath)
	if err != nil {
		return nil, err
	}
	groups, err := readDB(groupPath)
	if err != nil {
		return nil, err
	}
	u := &AppUser{Home: "/"}

	line, found := findByName(passwd, name)
	if !found {
		if u.UID, err = numericID(name, "user", passwdPath); err != nil {
			return nil, err
		}
		line, found = findByID(passwd, 2, u.UID)
	}
	if found {
		if err := u.fromPasswd(line); err != nil {
			return nil, err
		}
		if !hasGroup {
			if u.AdditionalGids, err = memberOf(groups, u.Username, u.GID); err != nil {
				return nil, err
			}
		}
	}

	if hasGroup {
		// An explicit group replaces the user's supplementary groups, as in docker run.
		if line, found := findByName(groups, group); found {
			u.GID, err = line.id(2, "gid")
		} else {
			u.GID, err = numericID(group, "group", groupPath)
		}
		if err != nil {
			return nil, err
		}
	}
	return u, nil
}

// numericID reads a user or group given by number, when its name is in no line of file.
func numericID(s, what, file string) (uint32, error) {
	id, err := parseID(s)
	if err != nil {
		if s == "" || strings.Trim(s, "0123456789") != "" {
			return 0, fmt.Errorf("no %s %q in %s", what, s, file)
		}
		return 0, fmt.Errorf("%s %v", what, err)
	}
	return id, nil
}

// fromPasswd takes the user's name, ids and home from its line of /etc/passwd:
// name:password:uid:gid:gecos:home:shell.
func (u *AppUser) fromPasswd(line dbLine) (err error) {
	if u.UID, err = line.id(2, "uid"); err != nil {
		return err
	}
	if u.GID, err = line.id(3, "gid"); err != nil {
		return err
	}
	u.Username = line.fields[0]
	if len(line.fields) > 5 && line.fields[5] != "" {
		u.Home = line.fields[5]
	}
	return nil
}

// memberOf lists the gids of the groups that name is a member of in /etc/group
// (name:password:gid:member,member...), but primary, once each.
func memberOf(groups []dbLine, name string, primary uint32) ([]uint32, error) {
	var gids []uint32
	for _, line := range groups {
		if len(line.fields) < 4 || !slices.Contains(strings.Split(line.fields[3], ","), name) {
			continue
		}
		gid, err := line.id(2, "gid")
		if err != nil {
			return nil, err
		}
		if gid != primary && !slices.Contains(gids, gid) {
			gids = append(gids, gid)
		}
	}
	return gids, nil
}

// Env sets HOME, USER and LOGNAME in env for this user, replacing what was there.
func (u *AppUser) Env(env []string) []string {
	out := append(withoutEnv(env, "HOME", "USER", "LOGNAME"), "HOME="+u.Home)
	if u.Username != "" {
		out = append(out, "USER="+u.Username, "LOGNAME="+u.Username)
	}
	return out
}

// WithEnv is env with the KEY=VALUE entries set, in place of any it had of those keys: a
// program reads the first of two (getenv, Go's os.Getenv), so appending would not do.
func WithEnv(env []string, set ...string) []string {
	keys := make([]string, len(set))
	for i, kv := range set {
		keys[i], _, _ = strings.Cut(kv, "=")
	}
	return append(withoutEnv(env, keys...), set...)
}

// withoutEnv is env without the variables named keys.
func withoutEnv(env []string, keys ...string) []string {
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(keys, name) {
			out = append(out, kv)
		}
	}
	return out
}
