#!/usr/bin/env bash
# Installs what the tests need beside Go: Mosquitto (reference broker) and its clients,
# openssl for scripts/gen-certs.sh, tmux for scripts/demo-test.sh, curl for the walkthroughs,
# chromium for the live page's browser test, prometheus (and promtool) for the /metrics tests,
# node and npm for the mqtt.js tests (tests/mqttjs: npm ci --prefix tests/mqttjs).
# Usage: scripts/install-deps.sh        (uses apt-get; sudo when not root)
set -euo pipefail

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v openssl >/dev/null 2>&1 || need+=(openssl) # scripts/gen-certs.sh
command -v tmux >/dev/null 2>&1 || need+=(tmux) # scripts/demo-test.sh runs the demo in a terminal
command -v curl >/dev/null 2>&1 || need+=(curl) # the $SYS walkthrough reads the HTTP statistics
command -v chromium >/dev/null 2>&1 || need+=(chromium) # TestLivePageInBrowser
command -v prometheus >/dev/null 2>&1 || need+=(prometheus) # TestPrometheusScrapesBroker, promtool
command -v npm >/dev/null 2>&1 || need+=(npm) # TestMQTTJS: mqtt.js from the npm registry

# mqtt.js, pinned by tests/mqttjs/package-lock.json, once.
mqttjs() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/mqttjs" && pwd)"
  [ -d "$dir/node_modules/mqtt" ] || npm ci --silent --no-audit --no-fund --prefix "$dir"
}
if [ ${#need[@]} -eq 0 ]; then
  mqttjs
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: please install ${need[*]} with your package manager" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${need[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts a system mosquitto on :1883, which would take the demo's port; tests start their own.
# Prometheus too, on :9090. Tests start their own on free ports.
for svc in mosquitto prometheus; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
mqttjs
