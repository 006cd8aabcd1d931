# The README's two commands: `make run` and `make test`.
GO ?= go
BIN := bin/sluice
RUNDIR ?= $(CURDIR)/.run

.PHONY: build run test unit fuzz bench deps clean

build:
	$(GO) build -o $(BIN) ./cmd/sluice

# The main job on the embedded default: for now, sign and publish the sample
# packages into local APT and RPM repositories under $(RUNDIR).
run: build
	RUNDIR=$(RUNDIR) SLUICE=$(BIN) ./scripts/run.sh

deps:
	./scripts/test-deps.sh

# Everything, with the real tools: vet, all tests, a short run of every
# fuzz target.
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...
	./scripts/fuzz.sh

bench: deps
	$(GO) run ./internal/cmd/repobench
	$(GO) run ./internal/cmd/buildbench

clean:
	rm -rf bin $(RUNDIR)
