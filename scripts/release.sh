#!/usr/bin/env bash
# Cross-builds mqttserver, mqttpublisher and mqttsubscriber for readers without Go: Windows, macOS
# and Linux, each on amd64 and arm64, into dist/ (git ignores it), with a SHA256SUMS file. The
# version is stamped in (each program's -version prints it): the one given, else git describe.
#
# Usage: scripts/release.sh [-o DIR] [-targets "OS/ARCH …"] [VERSION]
#   -o DIR       where the binaries go (default dist/ at the repository root, emptied first;
#                another DIR must be empty or not exist yet)
#   -targets …   the platforms, space-separated (default: every one below)
#   VERSION      e.g. v1.2.0 (default: git describe --tags --always --dirty, or dev)
# Files: PROGRAM-OS-ARCH, with .exe for Windows, e.g. dist/mqttserver-windows-amd64.exe
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
usage() { sed -n '/^# Usage:/,/^[^#]/s/^# \{0,1\}//p' "$0" >&2; exit 2; }
out="" targets="windows/amd64 windows/arm64 darwin/amd64 darwin/arm64 linux/amd64 linux/arm64" version=""
while [ $# -gt 0 ]; do
  case $1 in
    -o) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    -targets) [ $# -ge 2 ] || usage; targets=$2; shift 2 ;;
    -h | -help | --help) usage ;;
    -*) echo "release: unknown flag $1" >&2; usage ;;
    *) [ -z "$version" ] || usage; version=$1; shift ;;
  esac
done
if [ -z "$version" ]; then
  version=$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)
fi
if [ -z "$out" ]; then
  out=$root/dist
  rm -rf "$out"
elif [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
  echo "release: $out is not empty: give a new or empty directory" >&2
  exit 1
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

cd "$root"
for target in $targets; do
  os=${target%/*} arch=${target#*/} ext=""
  [ "$os" = windows ] && ext=.exe
  for prog in mqttserver mqttpublisher mqttsubscriber; do
    echo "release: $prog $version for $os/$arch" >&2
    # No cgo: one static file that runs on any machine of that platform.
    CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath \
      -ldflags "-s -w -X mqttdemo/shared/config.Version=$version" \
      -o "$out/$prog-$os-$arch$ext" "./$prog"
  done
done
cd "$out"
if command -v sha256sum >/dev/null 2>&1; then
  sha256sum -- mqtt* >SHA256SUMS
else # macOS
  shasum -a 256 -- mqtt* >SHA256SUMS
fi
echo "release: $version in $out (check with: cd $out && sha256sum -c SHA256SUMS)" >&2
