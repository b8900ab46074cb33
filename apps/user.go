package apps

import (
	"fmt"
	"os/user"
	"slices"
	"strconv"
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
// supplementary groups come from /etc/group.
func LookupUser(spec string) (*AppUser, error) {
	name, group, hasGroup := strings.Cut(spec, ":")
	u := &AppUser{Home: "/"}

	pw, err := user.Lookup(name)
	if err != nil {
		pw, err = user.LookupId(name)
	}
	switch {
	case err == nil:
		uid, _ := strconv.ParseUint(pw.Uid, 10, 32)
		gid, _ := strconv.ParseUint(pw.Gid, 10, 32)
		u.UID, u.GID, u.Username, u.Home = uint32(uid), uint32(gid), pw.Username, pw.HomeDir
		if ids, err := pw.GroupIds(); err == nil {
			for _, g := range ids {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(n) != u.GID {
					u.AdditionalGids = append(u.AdditionalGids, uint32(n))
				}
			}
		}
	default:
		uid, perr := strconv.ParseUint(name, 10, 32)
		if perr != nil {
			return nil, fmt.Errorf("no user %q in /etc/passwd", name)
		}
		u.UID = uint32(uid)
	}

	if hasGroup {
		gr, err := user.LookupGroup(group)
		if err != nil {
			gr, err = user.LookupGroupId(group)
		}
		if err == nil {
			gid, _ := strconv.ParseUint(gr.Gid, 10, 32)
			u.GID = uint32(gid)
		} else if gid, perr := strconv.ParseUint(group, 10, 32); perr == nil {
			u.GID = uint32(gid)
		} else {
			return nil, fmt.Errorf("no group %q in /etc/group", group)
		}
		// An explicit group replaces the user's supplementary groups, as in docker run.
		u.AdditionalGids = nil
	}
	return u, nil
}

// Env sets HOME, USER and LOGNAME in env for this user, replacing what was there.
func (u *AppUser) Env(env []string) []string {
	out := append(withoutEnv(env, "HOME", "USER", "LOGNAME"), "HOME="+u.Home)
	if u.Username != "" {
		out = append(out, "USER="+u.Username, "LOGNAME="+u.Username)
	}
	return out
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
