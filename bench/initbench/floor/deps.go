//go:build tenderdeps

package main

// Built with -tags tenderdeps, the floor program also links tender's packages and with them
// their initialisation, which runs as it does in tender: the difference from the plain floor
// is what that initialisation (and the larger binary) costs.
import (
	_ "github.com/tenderinit/tender/apps"
	_ "github.com/tenderinit/tender/balancer"
	_ "github.com/tenderinit/tender/capabilities"
	_ "github.com/tenderinit/tender/config"
	_ "github.com/tenderinit/tender/control"
	_ "github.com/tenderinit/tender/reaper"
)
