#!/usr/bin/env bash
# Runs every test of the suite: unit, integration, end-to-end (real binaries) and interop with
# Mosquitto, with the race detector. Extra arguments go to go test.
# Usage: scripts/test.sh [go test flags]     e.g. scripts/test.sh -run TestEndToEnd -v
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed: $unformatted" >&2
  exit 1
fi
go vet work
go test -race -count=1 -timeout 25m "$@" work
