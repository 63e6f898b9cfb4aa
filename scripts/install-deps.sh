#!/usr/bin/env bash
# Installs what the tests need beside Go: Mosquitto (reference broker) and its clients,
# openssl for scripts/gen-certs.sh, tmux for scripts/demo-test.sh, curl for the walkthroughs,
# chromium for the live page's browser test.
# Usage: scripts/install-deps.sh        (uses apt-get; sudo when not root)
set -euo pipefail

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v openssl >/dev/null 2>&1 || need+=(openssl) # scripts/gen-certs.sh
command -v tmux >/dev/null 2>&1 || need+=(tmux) # scripts/demo-test.sh runs the demo in a terminal
command -v curl >/dev/null 2>&1 || need+=(curl) # the $SYS walkthrough reads the HTTP statistics
command -v chromium >/dev/null 2>&1 || need+=(chromium) # TestLivePageInBrowser
[ ${#need[@]} -eq 0 ] && exit 0

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
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
  $sudo systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
