#!/usr/bin/env bash
# Benchmarks mqttserver against bare mochi-mqtt and Mosquitto on this machine; writes the report
# (BENCHMARKS.md) and its chart (benchmarks.svg) to bench-out/ at the repository root (git ignores
# it), or to the directory -dir names; -update-docs rewrites the repository's own documents.
# Usage: scripts/bench.sh [-quick] [-dir DIR | -update-docs] [bench flags…]   (-h lists the flags)
#   -quick   fewer cases, shorter runs: under 2 minutes; the full run takes about 20.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() { sed -n '2,6s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
help=""
case "${1:-}" in
  -h | -help | --help) usage; echo; help=1 ;;
esac

bin="$(mktemp -d "${TMPDIR:-/tmp}/mqttbench-bin.XXXXXX")"
trap 'rm -rf "$bin"' EXIT
if [ -n "$help" ]; then
  (cd "$root" && go build -o "$bin/bench" ./scripts/bench)
  "$bin/bench" -h
  exit 0
fi

"$root/scripts/install-deps.sh"
mosquitto="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
# 10,000 idle connections need as many descriptors in the benchmark and in each broker.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "bench: building mqttserver, baremochi and the benchmark" >&2
(cd "$root" && go build -o "$bin/mqttserver" ./mqttserver &&
  go build -o "$bin/baremochi" ./scripts/bench/baremochi &&
  go build -o "$bin/bench" ./scripts/bench)
# Not exec: the trap must remove the build once the benchmark ends. From the caller's directory,
# so that a relative -dir is where the caller means.
"$bin/bench" -mqttserver "$bin/mqttserver" -mochi "$bin/baremochi" -mosquitto "$mosquitto" -repo "$root" "$@"
