# The README's two commands: `make run` and `make test`.
GO ?= go
BIN := bin/sluice
RUNDIR ?= $(CURDIR)/.run

.PHONY: build run test unit fuzz bench deps clean

build:
	$(GO) build -o $(BIN) ./cmd/sluice

# The main job on the embedded default, under $(RUNDIR): build the sample
# source packages from git, publish them into signed APT and RPM
# repositories, verify them (scripts/run.sh); then the gating engine on
# the local source: changes checked, approved, gated (one failing, one
# conflicting), merged and released (scripts/gate-demo.sh).
run: build deps
	RUNDIR=$(RUNDIR) SLUICE=$(BIN) ./scripts/run.sh
	RUNDIR=$(RUNDIR) SLUICE=$(BIN) ./scripts/gate-demo.sh

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
	$(GO) run ./internal/cmd/gatesim
	$(GO) run ./internal/cmd/resultsbench
	$(GO) run ./internal/cmd/envbench
	$(GO) run ./internal/cmd/mirrorbench
	$(GO) run ./internal/cmd/gearbench

clean:
	rm -rf bin $(RUNDIR)
