#!/usr/bin/env bash
# Runs every Go fuzz target of the module for a short time (FUZZTIME, default
# 5s): seeds come from testdata/fuzz, new crashers are written there.
# Go's progress lines count a worker's executions only when it reports back
# (on a new interesting input or at the end), so "execs" can read low while
# the workers run at full speed.
set -euo pipefail
fuzztime=${FUZZTIME:-5s}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz: $pkg $target ($fuzztime)"
    # Go's fuzzer can end a run that found nothing with "context deadline
    # exceeded" when the time is up while a worker is busy (golang/go#56238);
    # such a run, and only such a run (no failing input), is made once more.
    if ! out=$(go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" 2>&1); then
      echo "$out"
      if grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
        echo "fuzz: $target ended on the fuzzer's own deadline, not on an input: once more"
        go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg"
      else
        exit 1
      fi
    else
      echo "$out"
    fi
  done
done
