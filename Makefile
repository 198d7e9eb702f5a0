# hotrow — see README.md.
GO      ?= go
BIN     := bin/hotrow
BENCH   := bin/hotrow-bench
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: build test demo lint deps bench

# The proxy, and the load generator and demo that start it as a child.
build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/hotrow
	$(GO) build -o $(BENCH) ./cmd/hotrow-bench

# Every test, with the race detector, against a real MariaDB the tests start.
test: deps
	$(GO) test -race -count=1 -timeout 40m ./...

# A flash sale direct and through hotrow on a self-provisioned MariaDB.
demo: deps build
	./$(BENCH) demo

# Every scenario direct and through hotrow at 256 clients (see BENCHMARKS.md).
bench: deps build
	./$(BENCH) bench --scenario all --clients 256 --json bench/results/all-256.json --chart bench/results/all-256.png

# gofmt, go vet, and go.mod/go.sum as go mod tidy leaves them.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

deps:
	@scripts/install-deps.sh
