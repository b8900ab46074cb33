package config

import (
	"strings"

	"github.com/moby/sys/capability"
)

// knownCap reports whether name (CAP_X) is a capability this build knows.
func knownCap(name string) bool {
	for _, c := range capability.ListKnown() {
		if "CAP_"+strings.ToUpper(c.String()) == name {
			return true
		}
	}
	return false
}
