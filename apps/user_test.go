package apps

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment, and a blank line

app:x:1000:1000:app:/home/app:/bin/sh
neg:x:-1:-1:negative:/:/bin/sh
big:x:4294967295:1000::/:/bin/sh
huge:x:99999999999:1000::/:/bin/sh
emptyuid:x::1000::/:/bin/sh
badgid:x:1001:x1::/:/bin/sh
short:x:1002
nohome:x:1003:1003:::/bin/sh
+nis
`

const testGroup = `root:x:0:
app:x:1000:
staff:x:50:app,other
wheel:x:10:other,app
dup:x:50:app
neggroup:x:-5:
emptygid:x::
nohome:x:1003:
`

// Every id tender takes from /etc/passwd or /etc/group is a number from 0 to 2^32-2, or the
// lookup fails naming the file and the line: `neg:x:-1:-1` used to run the apps as root (the
// parse error was dropped and the uid read as 0), and 2^32-1 is setresuid's "unchanged".
func TestLookupUser(t *testing.T) {
	dir := t.TempDir()
	passwd, group := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	if err := os.WriteFile(passwd, []byte(testPasswd), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(group, []byte(testGroup), 0o644); err != nil {
		t.Fatal(err)
	}
	user := func(uid, gid uint32, name, home string, extra ...uint32) *AppUser {
		return &AppUser{User: specs.User{UID: uid, GID: gid, Username: name, AdditionalGids: extra}, Home: home}
	}
	for _, tc := range []struct {
		spec string
		want *AppUser
		err  string // a part of the error, when one is wanted
	}{
		{spec: "app", want: user(1000, 1000, "app", "/home/app", 50, 10)},
		{spec: "1000", want: user(1000, 1000, "app", "/home/app", 50, 10)},
		{spec: "app:staff", want: user(1000, 50, "app", "/home/app")},
		{spec: "app:77", want: user(1000, 77, "app", "/home/app")},
		{spec: "root", want: user(0, 0, "root", "/root")},
		{spec: "4242", want: user(4242, 0, "", "/")},
		{spec: "4242:4242", want: user(4242, 4242, "", "/")},
		{spec: "4294967294", want: user(4294967294, 0, "", "/")},
		{spec: "nohome", want: user(1003, 1003, "nohome", "/")},

		{spec: "neg", err: passwd + ` line 5: uid "-1" is not a number from 0 to 4294967294`},
		{spec: "big", err: passwd + ` line 6: uid "4294967295" is not a number from 0 to 4294967294`},
		{spec: "huge", err: passwd + ` line 7: uid "99999999999" is not a number`},
		{spec: "emptyuid", err: passwd + ` line 8: uid "" is not a number`},
		{spec: "badgid", err: passwd + ` line 9: gid "x1" is not a number`},
		{spec: "short", err: passwd + ` line 10: no gid field (3 fields)`},
		{spec: "app:neggroup", err: group + ` line 6: gid "-5" is not a number`},
		{spec: "app:emptygid", err: group + ` line 7: gid "" is not a number`},
		{spec: "4294967295", err: `user "4294967295" is not a number from 0 to 4294967294`},
		{spec: "app:4294967295", err: `group "4294967295" is not a number from 0 to 4294967294`},
		{spec: "nobody-here", err: `no user "nobody-here" in ` + passwd},
		{spec: "-1", err: `no user "-1" in ` + passwd},
		{spec: "+nis", err: `no user "+nis" in ` + passwd},
		{spec: ":0", err: `no user "" in ` + passwd},
		{spec: "app:nogroup", err: `no group "nogroup" in ` + group},
		{spec: "app:", err: `no group "" in ` + group},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := lookupUser(tc.spec, passwd, group)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v, error %v; want the error %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.UID != tc.want.UID || got.GID != tc.want.GID || got.Username != tc.want.Username ||
				got.Home != tc.want.Home || !slices.Equal(got.AdditionalGids, tc.want.AdditionalGids) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// A malformed group line that lists the user is refused too: its gid would be one of the
// app's groups.
func TestLookupUserRefusesAMalformedSupplementaryGroup(t *testing.T) {
	dir := t.TempDir()
	passwd, group := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	if err := os.WriteFile(passwd, []byte("app:x:1000:1000::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(group, []byte("ok:x:5:app\nbad:x:-1:app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if u, err := lookupUser("app", passwd, group); err == nil || !strings.Contains(err.Error(), group+` line 2: gid "-1"`) {
		t.Errorf("got %+v, error %v; want /etc/group's line 2 refused", u, err)
	}
}

// Without /etc/passwd (a scratch image) a numeric user still runs, as with docker run.
func TestLookupUserWithoutFiles(t *testing.T) {
	dir := t.TempDir()
	u, err := lookupUser("1000:1000", filepath.Join(dir, "passwd"), filepath.Join(dir, "group"))
	if err != nil || u.UID != 1000 || u.GID != 1000 || u.Home != "/" {
		t.Errorf("got %+v, %v; want uid and gid 1000, HOME=/", u, err)
	}
}

// WithEnv replaces a variable rather than adding a second one, which a program would not see:
// getenv and Go's os.Getenv read the first.
func TestWithEnv(t *testing.T) {
	got := WithEnv([]string{"PORT=1", "A=x", "PORT=2", "B"}, "PORT=3", "C=y")
	if want := []string{"A=x", "B", "PORT=3", "C=y"}; !slices.Equal(got, want) {
		t.Errorf("WithEnv = %q, want %q", got, want)
	}
}
