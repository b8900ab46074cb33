package capabilities

import (
	"strings"
	"sync"

	"github.com/moby/sys/capability"
)

// CapName is a capability's OCI name: CAP_NET_BIND_SERVICE.
func CapName(c capability.Cap) string { return "CAP_" + strings.ToUpper(c.String()) }

// CapByName finds a capability this build knows by its OCI name.
func CapByName(name string) (capability.Cap, bool) {
	c, ok := capsByName()[name]
	return c, ok
}

// capsByName maps the OCI name of every capability this build knows to it. Made once: every
// app process's start looks up the names of its capability sets.
var capsByName = sync.OnceValue(func() map[string]capability.Cap {
	m := map[string]capability.Cap{}
	for _, c := range capability.ListKnown() {
		m[CapName(c)] = c
	}
	return m
})
