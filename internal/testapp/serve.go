package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serve [flags]: a pool worker. It listens on $PORT and answers HTTP:
//
//	/            "id pid port"
//	/hold?ms=N   the same, after N ms (a long session)
//	/grow?mb=N   the same, after keeping N more MiB
//	/echo        the size of the request body, read as it streams
//	/headers     the request's headers
//	/ws          an upgrade to a line echo (a stand-in for WebSocket)
//	/print?n=N   N lines of output on stdout, then the answer
//	/post        the request body, after appending it as a line to the -posts file
//	/block?ms=N  holds every request of the worker N ms, this one included: an event loop
//	             that a synchronous call blocks
//	/drip?ms=N   the answer's head and a line at once, the rest after N ms: a long download
//
// With -leak it also grows on its own, as a worker that leaks memory does.
//
// Flags change how it starts and stops, for the tests of the pool.
func cmdServe(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	record := fs.String("record", "", "append a line \"time pid id port\" to this file at start")
	notify := fs.Bool("notify", false, "send READY=1 on NOTIFY_SOCKET once listening")
	noListen := fs.Bool("no-listen", false, "do not listen (with -notify: ready by notification only)")
	delay := fs.Duration("delay", 0, "wait this long before listening")
	ignoreTerm := fs.Bool("ignore-term", false, "ignore SIGTERM")
	exitAfter := fs.Duration("exit-after", 0, "exit 1 after this long")
	say := fs.String("say", "", "print this line on stderr at start")
	failWhile := fs.String("fail-while", "", "exit 1 at once while this file exists")
	sigs := fs.String("signals", "", "append \"pid signal\" to this file for each SIGUSR1, SIGUSR2 and SIGWINCH")
	leak := fs.Int("leak", 0, "once listening, keep this many MiB more every 100ms, without end (a leak)")
	leakOnce := fs.String("leak-once", "", "with -leak: leak only in the worker that creates this file, so that its replacement and the other workers stay lean")
	posts := fs.String("posts", "", "the file /post appends each body it reads to, a line each")
	stopOn := fs.Int("stop-on", 0, "on this signal, append \"pid signal\" to the -signals file and exit 0 (a graceful stop by another signal than SIGTERM)")
	watchdog := fs.Bool("watchdog", false, "say WATCHDOG=1 on NOTIFY_SOCKET every third of WATCHDOG_USEC, until -silent-when's file names this worker")
	silentWhen := fs.String("silent-when", "", "with -watchdog: fall silent once this file holds this worker's TENDER_WORKER_ID")
	stoppingWhen := fs.String("stopping-when", "", "say STOPPING=1 on NOTIFY_SOCKET once this file holds this worker's TENDER_WORKER_ID")
	fs.Parse(args)

	id, port := os.Getenv("TENDER_WORKER_ID"), os.Getenv("PORT")
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	if *record != "" {
		appendLine(*record, fmt.Sprintf("%d %d %s %s", time.Now().UnixMicro(), os.Getpid(), id, port))
	}
	if *sigs != "" {
		c := make(chan os.Signal, 8)
		signal.Notify(c, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
		go func() {
			for s := range c {
				appendLine(*sigs, fmt.Sprintf("%d %d", os.Getpid(), s.(syscall.Signal)))
			}
		}()
	}
	if *stopOn != 0 {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.Signal(*stopOn))
		go func() {
			s := <-c
			if *sigs != "" {
				appendLine(*sigs, fmt.Sprintf("%d %d", os.Getpid(), s.(syscall.Signal)))
			}
			os.Exit(0)
		}()
	}
	if *watchdog {
		usec, _ := strconv.Atoi(os.Getenv("WATCHDOG_USEC"))
		go func() {
			for !names(*silentWhen, id) {
				sayNotify("WATCHDOG=1")
				time.Sleep(time.Duration(usec) * time.Microsecond / 3)
			}
		}()
	}
	if *stoppingWhen != "" {
		go func() {
			for !names(*stoppingWhen, id) {
				time.Sleep(20 * time.Millisecond)
			}
			sayNotify("STOPPING=1")
		}()
	}
	if *say != "" {
		fmt.Fprintln(os.Stderr, *say)
	}
	if _, err := os.Stat(*failWhile); *failWhile != "" && err == nil {
		os.Exit(1)
	}
	if *exitAfter > 0 {
		time.AfterFunc(*exitAfter, func() { os.Exit(1) })
	}
	time.Sleep(*delay)

	hello := []byte(fmt.Sprintf("%s %d %s\n", id, os.Getpid(), port))
	var hoard [][]byte
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write(hello) })
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			w.Write(hello)
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/grow", func(w http.ResponseWriter, r *http.Request) {
		mb, _ := strconv.Atoi(r.URL.Query().Get("mb"))
		b := make([]byte, mb<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		mu.Lock()
		hoard = append(hoard, b)
		mu.Unlock()
		w.Write(hello)
	})
	mux.HandleFunc("/print", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		for i := 0; i < n; i++ {
			fmt.Printf("worker %s line %d %s\n", id, i, strings.Repeat("x", 200))
		}
		w.Write(hello)
	})
	mux.HandleFunc("/post", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || *posts == "" {
			http.Error(w, "no body, or no -posts file", http.StatusBadRequest)
			return
		}
		appendLine(*posts, string(body))
		w.Write(body)
	})
	var loop sync.RWMutex // every request holds it to read, /block to write
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		loop.Lock()
		time.Sleep(time.Duration(ms) * time.Millisecond)
		loop.Unlock()
		w.Write(hello)
	})
	mux.HandleFunc("/drip", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		w.Write(hello)
		w.(http.Flusher).Flush()
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			w.Write(hello)
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		r.Header.Write(w)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		var total int64
		for {
			n, err := r.Body.Read(buf)
			total += int64(n)
			if err != nil {
				break
			}
		}
		fmt.Fprintf(w, "%d\n", total)
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + r.Header.Get("Upgrade") + "\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString("echo " + line)
			brw.Flush()
		}
	})

	var ln net.Listener
	if !*noListen {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:"+port)
		must(err)
	}
	if *notify {
		sayNotify("READY=1")
	}
	if ln == nil {
		if !*ignoreTerm {
			stop := make(chan os.Signal, 1)
			signal.Notify(stop, syscall.SIGTERM)
			<-stop
			return
		}
		for {
			time.Sleep(time.Hour)
		}
	}
	if *leak > 0 && claim(*leakOnce) {
		go leakMemory(*leak)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/block" {
			loop.RLock()
			defer loop.RUnlock()
		}
		mux.ServeHTTP(w, r)
	})}
	if !*ignoreTerm {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM)
		go func() {
			<-stop
			srv.Close()
		}()
	}
	srv.Serve(ln)
}

// sayNotify says msg on NOTIFY_SOCKET, as sd_notify does.
func sayNotify(msg string) {
	c, err := net.Dial("unixgram", os.Getenv("NOTIFY_SOCKET"))
	must(err)
	c.Write([]byte(msg + "\n"))
	c.Close()
}

// names reports whether the file at path holds id (a line of its own).
func names(path, id string) bool {
	b, err := os.ReadFile(path)
	return err == nil && slices.Contains(strings.Fields(string(b)), id)
}

// claim creates path, and reports whether this process was the one that did: of several
// workers started together, exactly one claims it, and a worker started later finds it made.
// An empty path is everyone's.
func claim(path string) bool {
	if path == "" {
		return true
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// leakMemory keeps mib more MiB every 100ms, touched so that they count in the RSS and the
// cgroup, until the process is killed.
func leakMemory(mib int) { grow(mib, 100*time.Millisecond) }
