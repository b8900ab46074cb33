// Command demo is the small web app that `make run` runs under tender, and the worker that
// `make bench-balancer` puts behind tender, HAProxy and nginx alike.
//
// It listens on $PORT (default 8080) and answers:
//
//	/            a line naming the worker and its pid
//	/hold?ms=N   the same after holding the request N milliseconds (a long session)
//	/grow?mb=N   the same after keeping N more MiB (to see memory recycling)
//	/stats       "inflight N served M": requests in flight now, and served so far
//
// On SIGTERM it stops accepting and finishes the requests in flight.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

var hoard [][]byte

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	id := os.Getenv("TENDER_WORKER_ID")
	hello := []byte(fmt.Sprintf("hello from worker %s (pid %d)\n", id, os.Getpid()))

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	})
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		w.Write(hello)
	})
	mux.HandleFunc("/grow", func(w http.ResponseWriter, r *http.Request) {
		mb, _ := strconv.Atoi(r.URL.Query().Get("mb"))
		b := make([]byte, mb<<20)
		for i := range b {
			b[i] = 1
		}
		hoard = append(hoard, b)
		w.Write(hello)
	})

	var inflight, served atomic.Int64
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stats" {
			fmt.Fprintf(w, "inflight %d served %d\n", inflight.Load(), served.Load())
			return
		}
		inflight.Add(1)
		mux.ServeHTTP(w, r)
		inflight.Add(-1)
		served.Add(1)
	})
	srv := &http.Server{Addr: ":" + port, Handler: counted, ReadHeaderTimeout: 10 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "demo: requests still in flight after 5s:", err)
		}
	}()
	fmt.Fprintf(os.Stderr, "demo: worker %q listening on :%s\n", id, port)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	// ListenAndServe returns as soon as Shutdown closes the listener, before the requests in
	// flight are done: returning from main then would cut them off (under tini, on docker stop).
	<-drained
}
