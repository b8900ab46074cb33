package capabilities

import (
	"strings"

	"github.com/moby/sys/capability"
)

// CapName is a capability's OCI name: CAP_NET_BIND_SERVICE.
func CapName(c capability.Cap) string { return "CAP_" + strings.ToUpper(c.String()) }

// CapByName finds a capability this build knows by its OCI name.
func CapByName(name string) (capability.Cap, bool) {
	for _, c := range capability.ListKnown() {
		if CapName(c) == name {
			return c, true
		}
	}
	return 0, false
}
