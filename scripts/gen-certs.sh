#!/usr/bin/env bash
# Makes a development certificate authority and a server certificate signed by it, so that
# mqttserver can serve MQTT over TLS in one command. Not for production: the CA key sits beside
# the certificates.
#
# Usage: scripts/gen-certs.sh [DIR]          (default DIR: certs)
#   DIR/ca.crt       give to clients: mqttsubscriber -ca-file, mosquitto_sub --cafile
#   DIR/server.crt   mqttserver -tls-cert
#   DIR/server.key   mqttserver -tls-key
# The server certificate is valid for localhost, mqttserver (the compose service), 127.0.0.1
# and ::1. An existing CA in DIR is reused, so clients that trust it keep working.
set -euo pipefail
dir=${1:-certs}
command -v openssl >/dev/null || { echo "gen-certs: openssl is needed (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"

if [ ! -s ca.crt ] || [ ! -s ca.key ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 3650 \
    -keyout ca.key -out ca.crt -subj "/CN=mqttdemo development CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
  -keyout server.key -out server.csr -subj "/CN=mqttserver" 2>/dev/null
ext=$(mktemp)
trap 'rm -f "$ext" server.csr ca.srl' EXIT
cat >"$ext" <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:mqttserver,IP:127.0.0.1,IP:::1
EXT
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 825 \
  -extfile "$ext" -out server.crt 2>/dev/null
chmod 600 ca.key server.key
echo "gen-certs: wrote $dir/ca.crt, $dir/server.crt, $dir/server.key"
