#!/usr/bin/env bash
# Benchmarks mqttserver against bare mochi-mqtt and Mosquitto on this machine; writes
# BENCHMARKS.md and docs/benchmarks.svg at the repository root.
# Usage: scripts/bench.sh [-quick] [bench flags…]   (scripts/bench.sh -h lists the flags)
#   -quick   fewer cases, shorter runs: under 2 minutes; the full run takes under 20.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() { sed -n '2,5s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
case "${1:-}" in
  -h | -help | --help) usage; echo; ;;
esac

"$root/scripts/install-deps.sh"
mosquitto="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
# 10,000 idle connections need as many descriptors in the benchmark and in each broker.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
cd "$root"
go build -o "$bin/mqttserver" ./mqttserver
go build -o "$bin/baremochi" ./scripts/bench/baremochi
go build -o "$bin/bench" ./scripts/bench
mkdir -p docs
exec "$bin/bench" -mqttserver "$bin/mqttserver" -mochi "$bin/baremochi" -mosquitto "$mosquitto" \
  -out BENCHMARKS.md -chart docs/benchmarks.svg "$@"
