package procfile

import (
	"os"
	"slices"
	"testing"
)

// examples/Procfile, which the README shows, parses, has a release step, a web type and a
// worker, and needs no shell: it runs in a distroless image.
func TestExampleProcfile(t *testing.T) {
	f, err := os.Open("../examples/Procfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	types, err := Parse(f, "examples/Procfile")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	env := []string{"PORT=5000", "RAILS_ENV=production", "SIDEKIQ_CONCURRENCY=5"}
	for _, typ := range types {
		names = append(names, typ.Name)
		if c := ParseCommand(typ.Command, env); c.Shell != "" {
			t.Errorf("%s needs a shell, for %s", typ.Name, c.Shell)
		}
	}
	if !slices.Equal(names, []string{Release, Web, "worker"}) {
		t.Errorf("types %v, want release, web and worker", names)
	}
	web := ParseCommand(types[1].Command, env)
	if want := []string{"bundle", "exec", "puma", "--port", "5000", "--environment", "production"}; !slices.Equal(web.Args, want) {
		t.Errorf("web runs %q, want %q", web.Args, want)
	}
}
