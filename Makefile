GO      ?= go
BIN     ?= bin
PKGS    ?= ./...

.DEFAULT_GOAL := help
.PHONY: help run test lint bench build fuzz

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

run: ## run mayflyd on embedded defaults (data in ./mayfly-data; installs PostgreSQL where missing)
	./deploy/ensure-postgres.sh
	$(GO) run ./cmd/mayflyd $(ARGS)

test: ## run every test with -race against real Postgres and in-process NATS
	./deploy/ensure-postgres.sh
	$(GO) test -race -count=1 -timeout 12m $(PKGS)

lint: ## go vet and gofmt check
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fuzz: ## run each fuzz target for a short while (FUZZTIME=30s)
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$${FUZZTIME:-30s} ./schema/envelope
	$(GO) test -run='^$$' -fuzz=FuzzTokenVerify -fuzztime=$${FUZZTIME:-30s} ./fabric/token
	$(GO) test -run='^$$' -fuzz=FuzzGatewayDecodeJSON -fuzztime=$${FUZZTIME:-30s} ./gateway

bench: ## run the Go benchmarks (short)
	./deploy/ensure-postgres.sh
	$(GO) test -run='^$$' -bench=. -benchtime=2s $(PKGS)

build: ## build the binaries into ./bin
	$(GO) build -o $(BIN)/ ./cmd/...
