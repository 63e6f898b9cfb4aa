#!/usr/bin/env bash
# Fuzzes the broker with arbitrary bytes as MQTT packets: over TCP (FuzzBrokerTCP) and through
# the in-process connection path (FuzzBrokerPipe), each for the given duration (default 5m).
# Inputs that break the broker are saved under mqttserver/broker/testdata/fuzz/<target>/ and
# then run with every `go test`; commit them with the fix.
# Usage: scripts/fuzz.sh [duration]      e.g. scripts/fuzz.sh 30m
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-5m}
for target in FuzzBrokerTCP FuzzBrokerPipe; do
  echo "== $target for $duration"
  go test -run '^$' -fuzz "^$target\$" -fuzztime "$duration" mqttdemo/mqttserver/broker
done
