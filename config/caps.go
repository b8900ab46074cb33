package config

import "github.com/tenderinit/tender/capabilities"

// knownCap reports whether name (CAP_X) is a capability this build knows.
func knownCap(name string) bool {
	_, ok := capabilities.CapByName(name)
	return ok
}
