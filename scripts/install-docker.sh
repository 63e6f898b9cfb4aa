#!/usr/bin/env bash
# Installs what scripts/compose-test.sh needs on a Debian machine: a Docker engine (Debian's docker.io),
# the Compose v2 CLI plugin, and busybox-static (the test's local builder image needs a static /bin/sh).
# Idempotent: what is already there is kept. It does not start the engine (compose-test.sh does); by
# hand, as root: dockerd >/var/log/dockerd.log 2>&1 &   and to stop it: kill $(cat /var/run/docker.pid)
# (docs/docker.md#starting-the-engine; `service docker start` fails where there is no init system).
#
# Compose v2 is not packaged in Debian bookworm, so when `docker compose` is missing it is built from the
# Go module proxy (a few minutes on 2 cores) into a cache directory and copied into the CLI plugin
# directory; the next run reuses the cached binary. `go install …@version` refuses the module (its go.mod
# has exclude directives), hence the scratch module.
#
# Usage: scripts/install-docker.sh
#   COMPOSE_VERSION   Compose version to build (default v2.40.3)
#   MQTTDEMO_CACHE    cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/mqttdemo)
set -euo pipefail

if [ $# -gt 0 ]; then
  sed -n '/^# Usage:/,/^[^#]/s/^# \{0,1\}//p' "$0" >&2
  exit 2
fi

compose_version=${COMPOSE_VERSION:-v2.40.3}
cache=${MQTTDEMO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mqttdemo}
plugin_dir=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins

log() { echo "install-docker: $*" >&2; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

need=()
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v docker >/dev/null 2>&1 || need+=(docker.io)
# ldd fails on a static binary: that is the busybox the builder image needs.
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    log "please install ${need[*]} with your package manager"
    exit 1
  fi
  log "installing ${need[*]}"
  $sudo apt-get update -qq
  # Recommends would pull in git, xz and apparmor tools the test does not use; iptables, containerd and
  # runc are real dependencies and come anyway.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if docker compose version >/dev/null 2>&1; then
  log "$(docker compose version)"
  exit 0
fi

bin="$cache/docker-compose-$compose_version"
if [ ! -x "$bin" ]; then
  command -v go >/dev/null 2>&1 || { log "go is needed to build Compose $compose_version"; exit 1; }
  log "building Compose $compose_version from the Go module proxy (a few minutes)"
  start=$(date +%s)
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  mkdir -p "$cache"
  # The module list and the compiler's output go to a log, shown when the build fails.
  if ! (
    # (&&: inside an if, set -e does not stop at a failing step.)
    cd "$scratch" &&
      GOWORK=off go mod init composebuild &&
      GOWORK=off go get "github.com/docker/compose/v2/cmd@$compose_version" &&
      # Static, stripped, and stamped with its version so `docker compose version` tells what it is.
      GOWORK=off CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" \
        -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$compose_version" \
        github.com/docker/compose/v2/cmd
  ) >"$cache/compose-build.log" 2>&1; then
    tail -n 30 "$cache/compose-build.log" >&2
    log "building Compose failed; the whole log is $cache/compose-build.log"
    exit 1
  fi
  mv "$bin.tmp" "$bin"
  log "built in $(($(date +%s) - start)) s: $bin"
fi
mkdir -p "$plugin_dir"
cp "$bin" "$plugin_dir/docker-compose"
log "$(docker compose version)"
