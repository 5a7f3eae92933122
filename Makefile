GO      ?= go
BIN     ?= bin
PKGS    ?= ./...

.DEFAULT_GOAL := help
.PHONY: help run test lint bench bench-micro build fuzz dr-drill

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

run: ## run mayflyd on embedded defaults (data in ./mayfly-data; installs PostgreSQL where missing)
	./deploy/ensure-postgres.sh
	$(GO) run ./cmd/mayflyd $(ARGS)

test: ## run every test with -race against real Postgres, in-process NATS and headless Chromium
	./deploy/ensure-postgres.sh
	./deploy/ensure-chromium.sh
	$(GO) test -race -count=1 -timeout 12m $(PKGS)

lint: ## go vet, gofmt check, and go.mod/go.sum tidy (go mod tidy -diff)
	$(GO) vet $(PKGS)
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fuzz: ## run every fuzz target for a short while each (FUZZTIME=30s); a test checks none is missing
	$(GO) test -run='^$$' -fuzz='^FuzzTokenVerify$$' -fuzztime=$${FUZZTIME:-30s} ./fabric/token
	$(GO) test -run='^$$' -fuzz='^FuzzGatewayDecodeEvent$$' -fuzztime=$${FUZZTIME:-30s} ./gateway
	$(GO) test -run='^$$' -fuzz='^FuzzGatewayDecodeJSON$$' -fuzztime=$${FUZZTIME:-30s} ./gateway
	$(GO) test -run='^$$' -fuzz='^FuzzGatewaySkipPong$$' -fuzztime=$${FUZZTIME:-30s} ./gateway
	$(GO) test -run='^$$' -fuzz='^FuzzGatewayFrame$$' -fuzztime=$${FUZZTIME:-30s} ./gateway
	$(GO) test -run='^$$' -fuzz='^FuzzClientOpenBundle$$' -fuzztime=$${FUZZTIME:-30s} ./gateway/client
	$(GO) test -run='^$$' -fuzz='^FuzzFrameDecode$$' -fuzztime=$${FUZZTIME:-30s} ./schema
	$(GO) test -run='^$$' -fuzz='^FuzzFrameDecodeReference$$' -fuzztime=$${FUZZTIME:-30s} ./schema
	$(GO) test -run='^$$' -fuzz='^FuzzFrameEncode$$' -fuzztime=$${FUZZTIME:-30s} ./schema
	$(GO) test -run='^$$' -fuzz='^FuzzNormalizeLinkCode$$' -fuzztime=$${FUZZTIME:-30s} ./schema
	$(GO) test -run='^$$' -fuzz='^FuzzCheck$$' -fuzztime=$${FUZZTIME:-30s} ./schema/envelope
	$(GO) test -run='^$$' -fuzz='^FuzzOpen$$' -fuzztime=$${FUZZTIME:-30s} ./schema/envelope
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$${FUZZTIME:-30s} ./schema/envelope
	$(GO) test -run='^$$' -fuzz='^FuzzParseBundle$$' -fuzztime=$${FUZZTIME:-30s} ./schema/envelope
	$(GO) test -run='^$$' -fuzz='^FuzzParseDeviceList$$' -fuzztime=$${FUZZTIME:-30s} ./schema/envelope
	$(GO) test -run='^$$' -fuzz='^FuzzParsePrekey$$' -fuzztime=$${FUZZTIME:-30s} ./schema/envelope
	$(GO) test -run='^$$' -fuzz='^FuzzParseV2$$' -fuzztime=$${FUZZTIME:-30s} ./schema/envelope

bench: ## short mayfly-bench runs of scenarios 1 and 2 (under 2 minutes; see BENCHMARKS.md)
	./deploy/ensure-postgres.sh
	$(GO) build -o $(BIN)/ ./cmd/mayflyd ./cmd/mayfly-bench
	$(BIN)/mayfly-bench -conns 2000 -gateways 3 -workers 2 -rate 1000 -duration 10s -drain 10s -baseline 0 -quiet $(BENCH_ARGS)
	$(BIN)/mayfly-bench -conns 1000 -rate 250,500,1000 -duration 5s -drain 10s -max-p99 100ms -baseline 2s -quiet $(BENCH_ARGS)

bench-micro: ## run the Go micro-benchmarks (go test -bench; several minutes)
	./deploy/ensure-postgres.sh
	$(GO) test -run='^$$' -bench=. -benchtime=2s $(PKGS)

build: ## build the binaries into ./bin
	$(GO) build -o $(BIN)/ ./cmd/...

dr-drill: ## the city-loss drill: 3 loopback cities, SIGKILL city a under load, table of checks (DRILL_ARGS=…)
	./deploy/ensure-postgres.sh
	$(GO) build -o $(BIN)/ ./cmd/mayflyd ./cmd/mayfly-drill
	$(BIN)/mayfly-drill $(DRILL_ARGS)
