package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

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

// serveAdmin starts TENDER_ADMIN, when set, and returns the function that stops it. timings,
// the balancer's histograms, may be nil.
func serveAdmin(cfg *config.Config, src apps.StatusSource, timings control.MetricsWriter, log hclog.Logger) (closeIt func()) {
	if cfg.Admin == nil {
		return func() {}
	}
	admin, err := control.ServeAdmin(cfg.Admin, src, timings, log)
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
	req := control.Request{Cmd: cfg.Sub, Type: cfg.Type}
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

// health answers tender health: 0 when the running tender can take work (it is not stopping
// and at least one worker is ready), 1 otherwise, with one line saying why, for HEALTHCHECK and
// exec probes in images without curl. It asks through the control socket, or, where there is
// none (TENDER_CONTROL=off, a read-only container), through TENDER_ADMIN's /healthz.
func health(cfg *config.Config, w io.Writer) int {
	ok, why, err := healthByControl(cfg)
	if err != nil && cfg.Admin != nil {
		ok, why, err = healthByAdmin(cfg.Admin)
	}
	switch {
	case err != nil:
		fmt.Fprintf(w, "unhealthy: %v\n", err)
		return 1
	case !ok:
		fmt.Fprintf(w, "unhealthy: %s\n", why)
		return 1
	}
	fmt.Fprintf(w, "healthy: %s\n", why)
	return 0
}

func healthByControl(cfg *config.Config) (bool, string, error) {
	if cfg.Control == "off" {
		return false, "", errors.New("TENDER_CONTROL=off, and no TENDER_ADMIN to ask")
	}
	resp, err := control.Call(cfg.Control, control.Request{Cmd: config.CmdStatus})
	if err != nil {
		return false, "", err
	}
	ok, why := resp.Status.Health()
	return ok, why, nil
}

// healthByAdmin asks TENDER_ADMIN's /healthz, which answers 200 or 503 and the reason.
func healthByAdmin(addr *config.Address) (bool, string, error) {
	host := addr.Addr
	if strings.HasPrefix(host, ":") {
		host = "127.0.0.1" + host
	}
	c, err := net.DialTimeout(addr.Network, host, 2*time.Second)
	if err != nil {
		return false, "", fmt.Errorf("no running tender answers: TENDER_ADMIN %s: %w", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.0\r\n\r\n"); err != nil {
		return false, "", err
	}
	b, err := io.ReadAll(io.LimitReader(c, 4096))
	if err != nil {
		return false, "", fmt.Errorf("TENDER_ADMIN %s: %w", addr, err)
	}
	status, body, _ := strings.Cut(string(b), "\r\n\r\n")
	return strings.HasPrefix(status, "HTTP/1.1 200 ") || strings.HasPrefix(status, "HTTP/1.0 200 "), strings.TrimSpace(body), nil
}
