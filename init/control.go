package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/tenderinit/tender/apps"
	"github.com/tenderinit/tender/config"
	"github.com/tenderinit/tender/control"
)

// serveControl opens the control socket in the background, once after is closed (at once
// when it is nil), so that the app's start neither waits for it nor shares the CPUs with it,
// and returns the function that closes it. Where no socket can be made tender runs on without
// one and says so once.
func serveControl(cfg *config.Config, h control.Handler, log hclog.Logger, after <-chan struct{}) (closeIt func()) {
	if cfg.Control == "off" {
		return func() {}
	}
	opened := make(chan *control.Server, 1)
	go func() {
		if after != nil {
			<-after
		}
		srv, err := control.Listen(cfg.Control, h, log)
		if err != nil {
			log.Warn("running without a control socket: tender status will not reach this tender", "error", err)
			opened <- nil
			return
		}
		log.Debug("control socket ready", "path", srv.Path)
		opened <- srv
		srv.Serve()
	}()
	return func() {
		select {
		case srv := <-opened:
			if srv != nil {
				srv.Close()
			}
		default:
			// tender is done before its control socket is ready (an app that ends at once):
			// it does not wait for it. A socket file left behind is stale, and the next tender
			// to use the path removes it.
		}
	}
}

// serveAdmin starts TENDER_ADMIN, when set, and returns the function that stops it.
func serveAdmin(cfg *config.Config, src apps.StatusSource, log hclog.Logger) (closeIt func()) {
	if cfg.Admin == nil {
		return func() {}
	}
	admin, err := control.ServeAdmin(cfg.Admin, src, log)
	if err != nil {
		log.Error("running without the admin endpoint", "error", err)
		return func() {}
	}
	return admin.Close
}

// controlCommand runs tender status, restart or scale against the running tender.
func controlCommand(cfg *config.Config, w io.Writer) int {
	if cfg.Control == "off" {
		fmt.Fprintln(os.Stderr, "tender: TENDER_CONTROL=off: there is no control socket to talk to")
		return 1
	}
	req := control.Request{Cmd: cfg.Sub}
	if cfg.Sub == config.CmdScale {
		req.N = cfg.Workers
	}
	resp, err := control.Call(cfg.Control, req)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tender %s: %v\n", cfg.Sub, err)
		return 1
	}
	switch {
	case cfg.Sub != config.CmdStatus:
		fmt.Fprintf(w, "tender %s: done\n", cfg.Sub)
	case cfg.JSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(resp.Status)
	default:
		resp.Status.WriteTable(w)
	}
	return 0
}
