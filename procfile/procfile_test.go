package procfile

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	types, err := Parse(strings.NewReader(`# the app
web: bundle exec puma -p $PORT

worker:bundle exec sidekiq
  release: rake db:migrate  
clock_2-b: bin/clock # a comment for the shell
`), "Procfile")
	if err != nil {
		t.Fatal(err)
	}
	want := []Type{
		{"web", "bundle exec puma -p $PORT", 2},
		{"worker", "bundle exec sidekiq", 4},
		{"release", "rake db:migrate", 5},
		{"clock_2-b", "bin/clock # a comment for the shell", 6},
	}
	if !reflect.DeepEqual(types, want) {
		t.Errorf("got %+v, want %+v", types, want)
	}
}

func TestParseRefuses(t *testing.T) {
	for in, want := range map[string]string{
		"web: a\nno colon here\n":      `Procfile:2: want name: command, got "no colon here"`,
		"web: a\nweb: b\n":             "Procfile:2: process type web again (first on line 1)",
		"web app: a\n":                 `Procfile:1: process type "web app": want letters, digits, _ and - only`,
		"w.eb: a\n":                    `Procfile:1: process type "w.eb": want letters, digits, _ and - only`,
		"web:\n":                       "Procfile:1: process type web has no command",
		"":                             "Procfile: no process type: want name: command lines",
		"# only comments\n\n   \n":     "Procfile: no process type: want name: command lines",
		": a\n":                        `Procfile:1: process type "": want letters, digits, _ and - only`,
		"web: a\r\nworker: b\r\nx\r\n": `Procfile:3: want name: command, got "x"`,
	} {
		if _, err := Parse(strings.NewReader(in), "Procfile"); err == nil || err.Error() != want {
			t.Errorf("Parse(%q): %v, want %s", in, err, want)
		}
	}
}

func TestParseFormation(t *testing.T) {
	types := []Type{{Name: "web"}, {Name: "worker"}, {Name: "release"}, {Name: "clock"}}
	for _, tc := range []struct {
		in     string
		counts map[string]int // per type, as Count says
		err    string
	}{
		{"", map[string]int{"web": 1, "worker": 1, "release": 1, "clock": 1}, ""},
		{"web=4,worker=2", map[string]int{"web": 4, "worker": 2, "release": 1, "clock": 1}, ""},
		{"all=3, web = 5", map[string]int{"web": 5, "worker": 3, "release": 1, "clock": 3}, ""},
		{"all=0,web=2,release=0", map[string]int{"web": 2, "worker": 0, "release": 0, "clock": 0}, ""},
		{"wrker=2", nil, `"wrker=2": no process type wrker in the Procfile (it has web, worker, release, clock; all=N sets every type)`},
		{"web=-1", nil, `"web=-1": want TYPE=N with N >= 0, like web=4,worker=2`},
		{"web", nil, `"web": want TYPE=N with N >= 0, like web=4,worker=2`},
		{"web=two", nil, `"web=two": want TYPE=N with N >= 0, like web=4,worker=2`},
		{"release=2", nil, `"release=2": the release type runs once (1) or not at all (0)`},
	} {
		f, err := ParseFormation(tc.in, types)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseFormation(%q): %v, want %s", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseFormation(%q): %v", tc.in, err)
			continue
		}
		for typ, n := range tc.counts {
			if got := f.Count(typ); got != n {
				t.Errorf("ParseFormation(%q).Count(%s) = %d, want %d", tc.in, typ, got, n)
			}
		}
	}
}

func TestParseEnv(t *testing.T) {
	env, err := ParseEnv(strings.NewReader(`# settings
DATABASE_URL=postgres://db/app?sslmode=disable
export RAILS_ENV=production
QUOTED="a b"
SINGLE='c d'
SPACES=  kept as docker keeps them
EMPTY=
FROM_HOST
NOT_IN_HOST
`), ".env", []string{"FROM_HOST=yes"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"DATABASE_URL=postgres://db/app?sslmode=disable", "RAILS_ENV=production", "QUOTED=a b",
		"SINGLE=c d", "SPACES=  kept as docker keeps them", "EMPTY=", "FROM_HOST=yes"}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("got %q, want %q", env, want)
	}
	for in, want := range map[string]string{
		"A=1\n1B=2\n":   `.env:2: want KEY=VALUE with KEY of letters, digits and _, got "1B=2"`,
		"=value\n":      `.env:1: want KEY=VALUE with KEY of letters, digits and _, got "=value"`,
		"A-B=1\n":       `.env:1: want KEY=VALUE with KEY of letters, digits and _, got "A-B=1"`,
		"\nA B=1\n":     `.env:2: want KEY=VALUE with KEY of letters, digits and _, got "A B=1"`,
		"export =x\n\n": `.env:1: want KEY=VALUE with KEY of letters, digits and _, got "export =x"`,
	} {
		if _, err := ParseEnv(strings.NewReader(in), ".env", nil); err == nil || err.Error() != want {
			t.Errorf("ParseEnv(%q): %v, want %s", in, err, want)
		}
	}
}

func TestCommand(t *testing.T) {
	env := []string{"PORT=5000", "OPTS=-w 4  --preload", "EMPTY=", "NAME=a b"}
	for _, tc := range []struct {
		in    string
		args  []string
		shell string
	}{
		{"puma -p $PORT", []string{"puma", "-p", "5000"}, ""},
		{"puma -p ${PORT}", []string{"puma", "-p", "5000"}, ""},
		{"gunicorn $OPTS app:app", []string{"gunicorn", "-w", "4", "--preload", "app:app"}, ""},
		{`gunicorn "$OPTS" app:app`, []string{"gunicorn", "-w 4  --preload", "app:app"}, ""},
		{"x$EMPTY y", []string{"x", "y"}, ""},
		{"x $EMPTY y", []string{"x", "y"}, ""},
		{`x "$EMPTY" y`, []string{"x", "", "y"}, ""},
		{"echo pre${NAME}post", []string{"echo", "prea", "bpost"}, ""},
		{"echo $UNSET.", []string{"echo", "."}, ""},
		{`echo 'single $PORT' "double $PORT" back\ slash`, []string{"echo", "single $PORT", "double 5000", "back slash"}, ""},
		{`echo "a\"b\\c\$d\e"`, []string{"echo", `a"b\c$d\e`}, ""},
		{"echo 100$ $", []string{"echo", "100$", "$"}, ""},
		{"node --max-old-space-size=512 server.js", []string{"node", "--max-old-space-size=512", "server.js"}, ""},
		{`"exec" x`, []string{"exec", "x"}, ""},
		{"a=b c", nil, "an assignment before the command"},
		{"nginx -g 'daemon off;'", []string{"nginx", "-g", "daemon off;"}, ""},
		{"a | b", nil, "|"},
		{"a && b", nil, "&&"},
		{"a || b", nil, "||"},
		{"a; b", nil, ";"},
		{"a & b", nil, "&"},
		{"a > log", nil, ">"},
		{"a < in", nil, "<"},
		{"a *.rb", nil, "*"},
		{"a file?", nil, "?"},
		{"a [ab]", nil, "["},
		{"a ~/x", nil, "~"},
		{"a # comment", nil, "#"},
		{"a $(date)", nil, "$("},
		{"a `date`", nil, "`"},
		{`a "$(date)"`, nil, "$("},
		{"a ${PORT:-80}", nil, "${...}"},
		{"a $1", nil, "$1"},
		{"a $$", nil, "$$"},
		{"exec puma", nil, "exec"},
		{"cd app", nil, "cd"},
		{"(a)", nil, "("},
		{"a 'open", nil, "an unclosed '"},
		{`a "open`, nil, `an unclosed "`},
		{`a\`, nil, `a trailing \`},
		{"   ", nil, "no words"},
	} {
		got := ParseCommand(tc.in, env)
		want := Command{Args: tc.args, Shell: tc.shell}
		if tc.shell != "" {
			want.Args = ShellArgs(tc.in)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ParseCommand(%q) = %q (shell %q), want %q (shell %q)", tc.in, got.Args, got.Shell, want.Args, want.Shell)
		}
	}
}

// A command never makes tender panic, and either runs without a shell, with words, or with
// /bin/sh -c and the command as it was written.
func FuzzCommand(f *testing.F) {
	for _, s := range []string{"puma -p $PORT", `a "b $X" 'c'`, "a | b", "${X}", "$", `\`, `"`, "x=1 y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := ParseCommand(s, []string{"X=1 2"})
		if c.Shell != "" {
			if !reflect.DeepEqual(c.Args, ShellArgs(s)) {
				t.Fatalf("shell command %q: args %q", s, c.Args)
			}
			return
		}
		if len(c.Args) == 0 {
			t.Fatalf("%q: no shell and no words", s)
		}
		_ = fmt.Sprint(c)
	})
}
