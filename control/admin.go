package control

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/hashicorp/go-hclog"

	"github.com/tenderinit/tender/apps"
	"github.com/tenderinit/tender/config"
)

// Admin serves TENDER_ADMIN: /healthz (200 when at least one worker is ready), /metrics
// (Prometheus text format) and /status (the JSON of `tender status --json`).
type Admin struct {
	srv *http.Server
	ln  net.Listener
}

// ServeAdmin starts the admin endpoint on addr.
func ServeAdmin(addr *config.Address, src apps.StatusSource, log hclog.Logger) (*Admin, error) {
	ln, err := net.Listen(addr.Network, addr.Addr)
	if err != nil {
		return nil, fmt.Errorf("TENDER_ADMIN=%s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		st := src.Status()
		for _, wk := range st.Workers {
			if wk.State == string(apps.Ready) || wk.State == apps.Running {
				fmt.Fprintln(w, "ok")
				return
			}
		}
		http.Error(w, "no worker is ready", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(src.Status())
	})
	metrics.ExposeMetadata(true) // # TYPE lines, as Prometheus expects
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		statusMetrics(src.Status()).WritePrometheus(w)
		metrics.WriteProcessMetrics(w)
	})
	a := &Admin{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln}
	go func() {
		if err := a.srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Warn("admin endpoint stopped", "error", err)
		}
	}()
	log.Debug("admin endpoint ready", "address", ln.Addr().String())
	return a, nil
}

// Close stops the admin endpoint.
func (a *Admin) Close() { _ = a.srv.Close() }

// statusMetrics turns a status into metrics. A fresh set per scrape: workers come and go, and
// a gone worker's series must go with it.
func statusMetrics(st apps.Status) *metrics.Set {
	set := metrics.NewSet()
	byState := map[string]int{}
	for _, w := range st.Workers {
		byState[w.State]++
		if w.Pid == 0 {
			continue
		}
		labels := fmt.Sprintf(`{id="%d",pid="%d",state=%q}`, w.ID, w.Pid, w.State)
		gauge(set, "tender_worker_sessions"+labels, float64(w.Sessions))
		set.NewCounter("tender_worker_processed_total" + labels).Set(w.Processed)
		gauge(set, "tender_worker_uptime_seconds"+labels, w.UptimeSeconds)
		gauge(set, "tender_worker_rss_bytes"+labels, float64(w.RSSBytes))
		gauge(set, "tender_worker_oom_score_adj"+labels, float64(w.OOMScoreAdj))
	}
	restarts := map[int]int{}
	for _, w := range st.Workers {
		restarts[w.ID] = w.Restarts
	}
	for id, n := range restarts {
		set.NewCounter(fmt.Sprintf(`tender_worker_restarts_total{id="%d"}`, id)).Set(uint64(n))
	}
	for state, n := range byState {
		gauge(set, fmt.Sprintf(`tender_workers{state=%q}`, state), float64(n))
	}
	gauge(set, "tender_queue_length", float64(st.Queue))
	gauge(set, "tender_oom_score_adj", float64(st.Tender.OOMScoreAdj))
	return set
}

func gauge(set *metrics.Set, name string, v float64) {
	set.NewGauge(name, func() float64 { return v })
}
