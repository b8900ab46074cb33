# tender: a tiny PID 1 for containers.
#   make run    build and run tender over the demo app
#   make test   every test (the end-to-end ones need root, unshare, runc and a Docker engine)
#   make bench  compare tender with tini, dumb-init and catatonit; time the pool; tender
#               beside supervisord running a Procfile's programs
#   make bench-balancer  tender's balancer against HAProxy, nginx and PM2

GO      ?= go
BIN     := bin
LDFLAGS := -s -w -X main.Version=$(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BUILD   := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"

.PHONY: all build run test fuzz bench bench-balancer clean

all: build

build:
	$(BUILD) -o $(BIN)/tender ./init
	$(BUILD) -o $(BIN)/demo ./demo

# Four workers of the demo app behind one front socket. In another terminal:
#   curl localhost:8080; bin/tender status; kill -HUP <tender's pid> (rolling restart)
run: build
	@echo "tender runs 4 demo workers behind :8080 (try: curl localhost:8080, bin/tender status); Ctrl-C stops it"
	TENDER_WORKERS=4 TENDER_LISTEN=:8080 $(BIN)/tender -- $(BIN)/demo

# The reaper's tests once more as a 386 program, which catches signals with os/signal (tender's
# own handler is for amd64 and arm64), where this kernel runs 386 programs.
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 12m ./...
	cd examples/k8s && $(GO) vet ./... && $(GO) test -count=1 ./...
	@if GOARCH=386 CGO_ENABLED=0 $(GO) test -c -o $(BIN)/reaper-386.test ./reaper && $(BIN)/reaper-386.test -test.run '^$$' >/dev/null 2>&1; then \
		echo "reaper, as a 386 program:"; cd reaper && ../$(BIN)/reaper-386.test -test.count=1; \
	else echo "reaper, as a 386 program: skipped, this kernel does not run 386 programs"; fi

# Each fuzz target for a minute: the configuration, the HTTP head parser, Procfile commands.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime 60s ./config
	$(GO) test -run '^$$' -fuzz FuzzParseRequest -fuzztime 60s ./balancer
	$(GO) test -run '^$$' -fuzz FuzzCommand -fuzztime 60s ./procfile

bench: build
	$(GO) run ./bench/initbench
	$(GO) run ./bench/poolbench
	$(GO) run ./bench/procfilebench

bench-balancer:
	$(GO) run ./bench/balancerbench

clean:
	rm -rf $(BIN) bench/out
