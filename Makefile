# Portcullis. `make run` starts the quickstart; `make test` runs the whole suite.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
PKGS  := ./...
# The suite's budget (CI gives 90 minutes; we aim well under 15).
TEST_TIMEOUT ?= 12m
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# go-control-plane's generated marshallers (no protobuf reflection on the ext_authz and
# RLS responses); without the tag the standard codec is used, with identical bytes.
export GOFLAGS := $(strip $(GOFLAGS) -tags=vtprotobuf)

.PHONY: all build run test test-deps lint bench fuzz clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/portcullis ./cmd/portcullis
	$(GO) build -o $(BIN)/echo ./examples/echo

# Quickstart: the echo upstream on 127.0.0.1:8080 and the sidecar in front of it
# (proxy 127.0.0.1:8000, gRPC 127.0.0.1:9001, admin 127.0.0.1:9002). Ctrl-C stops both.
run: build
	@examples/quickstart/run.sh $(BIN)

# Brings what the suite needs (a Redis/Valkey server), then vet and every test.
test: test-deps
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

test-deps:
	@if ! command -v valkey-server >/dev/null && ! command -v redis-server >/dev/null; then \
	  echo "installing redis-server (Redis 7 speaks the Valkey protocol)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; \
	  elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null; \
	  else echo "cannot install redis-server: not root and no sudo" >&2; fi; \
	fi

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	$(GO) vet $(PKGS)
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	$$( command -v staticcheck || echo $$($(GO) env GOPATH)/bin/staticcheck ) $(PKGS)

# Go benchmarks plus the bounded loopback load run of both front-ends.
bench: build
	@test/load/bench.sh

# A short run of every fuzz target (FUZZTIME each).
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf $(BIN)
