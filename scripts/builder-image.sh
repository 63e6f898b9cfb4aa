#!/usr/bin/env bash
# Makes a local Go builder image for the Dockerfile, for a machine where no image registry is
# reachable (docker compose up --build fails at golang:1.26), and prints its name: pass it as
# GO_IMAGE. One command runs the compose demo then:
#
#   GO_IMAGE=$(scripts/builder-image.sh) docker compose up --build
#
# The image is made with `docker import` of a root filesystem (no base image to pull): this
# machine's Go toolchain, a static busybox for /bin/sh (apt-get install busybox-static), the CA
# certificates, and a module cache holding the programs' modules (from this machine's cache, else
# from the Go module proxy), with GOPROXY=off inside, so the build needs no network. Its name,
# mqttdemo-gobuilder:<go version>-<hash of the go.sum files>, changes with the toolchain and the
# modules; an existing one is reused, and older ones are removed (about 240 MB each). Remove the
# last one with: docker rmi $(docker images -q mqttdemo-gobuilder)
#
# Usage: scripts/builder-image.sh
set -euo pipefail

if [ $# -gt 0 ]; then
  sed -n '/^# Usage:/,/^[^#]/s/^# \{0,1\}//p' "$0" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

log() { echo "builder-image: $*" >&2; }

command -v go >/dev/null 2>&1 || { log "go is needed: the image holds this machine's Go toolchain"; exit 1; }
docker info >/dev/null 2>&1 || { log "no Docker engine answers (docker info); see docs/docker.md#starting-the-engine"; exit 1; }

gover=$(go env GOVERSION)
sum=$(cat shared/go.sum mqttserver/go.sum mqttpublisher/go.sum mqttsubscriber/go.sum | sha256sum | cut -c1-12)
tag="mqttdemo-gobuilder:$gover-$sum"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then # ldd fails on a static binary
  log "a static busybox is needed for the image's /bin/sh (apt-get install busybox-static)"
  exit 1
fi
log "making $tag (a minute or two)"
fs=$(mktemp -d)
trap 'chmod -R u+w "$fs" 2>/dev/null; rm -rf "$fs"' EXIT
mkdir -p "$fs/bin" "$fs/etc/ssl/certs" "$fs/usr/local" "$fs/go/pkg/mod" "$fs/root" "$fs/tmp"
chmod 1777 "$fs/tmp"
# The toolchain without its own tests and API lists: what `go build` needs.
tar -C "$(go env GOROOT)/.." --exclude=go/test --exclude=go/api --exclude=go/doc -cf - "$(basename "$(go env GOROOT)")" |
  tar -C "$fs/usr/local" -xf -
[ -d "$fs/usr/local/go" ] || mv "$fs/usr/local/$(basename "$(go env GOROOT)")" "$fs/usr/local/go"
cp "$busybox" "$fs/bin/busybox"
for applet in $("$busybox" --list); do
  [ -e "$fs/bin/$applet" ] || ln -s busybox "$fs/bin/$applet"
done
cp /etc/ssl/certs/ca-certificates.crt "$fs/etc/ssl/certs/"
# The modules of the three programs, from this machine's module cache when it has them, else
# from the module proxy; -modcacherw so the temporary tree can be removed.
mod=$(go env GOMODCACHE)
for m in mqttserver mqttpublisher mqttsubscriber; do
  (cd "$m" && GOWORK=off GOMODCACHE="$fs/go/pkg/mod" GOFLAGS="$(go env GOFLAGS) -modcacherw" \
    GOPROXY="file://$mod/cache/download,$(go env GOPROXY)" go mod download)
done
tar -C "$fs" -cf - . | docker import \
  -c 'ENV PATH=/usr/local/go/bin:/bin HOME=/root GOMODCACHE=/go/pkg/mod GOPROXY=off GOTOOLCHAIN=local' \
  -m "mqttdemo builder: $gover, busybox, CA certificates, module cache" \
  - "$tag" >/dev/null
# Builder images for other toolchains or go.sum files are stale now.
docker images --format '{{.Repository}}:{{.Tag}}' mqttdemo-gobuilder | grep -vxF "$tag" |
  xargs -r docker rmi >/dev/null 2>&1 || true
log "made $tag"
echo "$tag"
