#!/usr/bin/env bash
# Runs the real compose demo and checks it: `docker compose up --build -d` with the repository's
# Dockerfile and docker-compose.yml, then the broker turns healthy, the subscriber receives the
# publisher's time: messages, the broker logs both clients, the published port answers MQTT, the
# images are small and run as a user that is not root, the logs carry no colour codes by default,
# every MQTT_* setting of each program reaches its service (MQTT_QOS=1 docker compose up -d gives QoS 1),
# `docker compose down -v` (always run) leaves no container, network or volume behind, and the whole
# clean-up of docs/docker.md#removing-everything leaves no image of the project and no build cache.
#
# Without a registry no Go image can be pulled, so the test makes a builder image of its own with
# scripts/builder-image.sh (this machine's Go toolchain, a static busybox, the CA certificates and a
# module cache holding the programs' modules) and passes it as the Dockerfile's GO_IMAGE (with
# GOPROXY=off): the build needs no network. The Dockerfile and the compose file are the ones users
# run.
#
# It leaves nothing behind: its last step is the whole clean-up, which removes the project's images,
# the builder image, the engine's dangling images and ALL of the engine's unused build cache, not only
# this project's. MQTTDEMO_KEEP_IMAGES=1 skips that step and keeps the images and the build cache, to
# make the next run fast (about 20 s instead of 2 minutes). It prints the figures docs/docker.md quotes.
#
# When Docker is missing and this runs as root on Debian, scripts/install-docker.sh installs it; an
# engine that is not running is started (and stopped again at the end). Without Docker the test says
# "skipped: no Docker engine" and exits 0, except in CI (CI=true), where that is a failure.
#
# Usage: scripts/compose-test.sh
#   MQTTDEMO_GO_IMAGE     builder image to use instead of making one (e.g. golang:1.26 with a registry)
#   MQTTDEMO_KEEP_IMAGES  1: keep the images and the build cache for the next run (no clean-up test)
set -euo pipefail

if [ $# -gt 0 ]; then
  sed -n '/^# Usage:/,/^[^#]/s/^# \{0,1\}//p' "$0" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

project=mqttdemo-test
work=$(mktemp -d)
dockerd_pid=""
compose_up=""
passed=0
start=$SECONDS

log() { echo "compose-test: $*" >&2; }
ok() { passed=$((passed + 1)); echo "ok   compose: $*"; }
phase() { log "$* ($((SECONDS - start)) s)"; }
# --log-level error: without the buildx plugin every build warns that it is not installed (the
# engine's own builder does the work).
compose() { docker --log-level error compose -p "$project" "$@"; }
plain() { sed 's/\x1b\[[0-9;]*m//g; s/\r$//'; }
# logs SERVICE: the service's log as it is, colours included. Read whole into a variable before any
# grep -q, which would otherwise close the pipe early and fail the pipeline (pipefail).
logs() { compose logs --no-color "$1" 2>&1; }

fail() {
  echo "compose-test: FAIL: $*" >&2
  if [ -n "$compose_up" ]; then
    echo "--- docker compose ps" >&2
    compose ps -a >&2 || true
    echo "--- docker compose logs (last 30 lines of each)" >&2
    compose logs --no-color --tail 30 >&2 || true
  fi
  echo "compose-test: $passed passed, 1 failed" >&2
  exit 1
}

skip() {
  if [ "${CI:-}" = true ]; then
    fail "no Docker engine ($1), and CI must not skip this test"
  fi
  echo "compose-test: skipped: no Docker engine ($1)"
  exit 0
}

cleanup() {
  local status=$?
  if [ -n "$compose_up" ]; then
    compose down -v --remove-orphans --timeout 10 >"$work/down.log" 2>&1 || cat "$work/down.log" >&2
  fi
  # Images of earlier runs that this run's build replaced (the current ones are kept for the next).
  docker image prune -f --filter "label=com.docker.compose.project=$project" >/dev/null 2>&1 || true
  if [ -n "$dockerd_pid" ]; then
    kill -TERM "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

# until_true SECONDS COMMAND…: polls COMMAND every 0.5 s until it succeeds or SECONDS pass.
until_true() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

# --- A Docker engine with the Compose plugin ------------------------------------------------------
as_root=""
[ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 && as_root=1
if ! command -v docker >/dev/null 2>&1 || ! docker compose version >/dev/null 2>&1; then
  [ -n "$as_root" ] || skip "docker or its compose plugin is not installed; see scripts/install-docker.sh"
  phase "installing Docker (scripts/install-docker.sh)"
  "$root/scripts/install-docker.sh" || skip "scripts/install-docker.sh failed"
fi
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] || skip "the engine is not running and cannot be started here"
  phase "starting dockerd (log: /var/log/mqttdemo-dockerd.log)"
  dockerd >>/var/log/mqttdemo-dockerd.log 2>&1 &
  dockerd_pid=$!
  until_true 60 docker info >/dev/null 2>&1 || skip "dockerd did not answer within 60 s (see /var/log/mqttdemo-dockerd.log)"
fi
phase "engine $(docker version -f '{{.Server.Version}}'), $(docker compose version)"
# What the engine holds before: the clean-up at the end must leave no image that is not in this list.
images_before=$(docker images -aq --no-trunc | sort -u)

# --- The builder image ----------------------------------------------------------------------------
go_image=${MQTTDEMO_GO_IMAGE:-}
if [ -z "$go_image" ]; then
  phase "making the builder image"
  go_image=$("$root/scripts/builder-image.sh") || fail "could not make the builder image (scripts/builder-image.sh)"
  export GOPROXY=off
fi
ok "builder image $go_image"

# --- Up ---------------------------------------------------------------------------------------------
# GO_IMAGE and GOPROXY reach the Dockerfile through the compose file's build args. The broker's port
# is published on an ephemeral loopback port, so that nothing else on 1883 is in the way.
export GO_IMAGE=$go_image MQTTDEMO_PUBLISH=127.0.0.1: MQTTDEMO_HTTP_PUBLISH=127.0.0.1:
unset MQTT_COLOR NO_COLOR # the compose file's default
phase "docker compose up --build -d"
compose_up=1
up_start=$SECONDS
compose up --build -d --quiet-pull >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "docker compose up failed"; }
up_seconds=$((SECONDS - up_start))
phase "up"
ok "docker compose up --build -d"

server=$(compose ps -q mqttserver)
health() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$server")" = healthy ]; }
until_true 120 health || fail "the broker is not healthy after 120 s"
ok "broker healthy (mqttserver -healthcheck)"

received() { grep -q 'RECEIVED .* time:' <<<"$(logs mqttsubscriber | plain)"; }
until_true 60 received || fail "the subscriber received no time: message within 60 s"
ok "subscriber receives the publisher's time: messages"

broker_log=$(logs mqttserver | plain)
grep -q 'CONNECTED .*client=mqttsubscriber' <<<"$broker_log" || fail "the broker's log does not show the subscriber"
grep -q 'CONNECTED .*client=mqttpublisher' <<<"$broker_log" || fail "the broker's log does not show the publisher"
ok "broker log shows both clients connected"

# Docker's log is not a terminal: by default the programs do not colour it (docker compose colours
# the service names on a terminal by itself), so logs --no-color and log files are plain text.
! grep -q $'\x1b\\[' <<<"$(logs mqttsubscriber)" || fail "escape codes in the subscriber's log (docker compose logs --no-color)"
ok "no colour codes in docker compose logs --no-color"

# The published port, from this machine: a message from inside the compose network comes out.
published=$(compose port mqttserver 1883)
if command -v mosquitto_sub >/dev/null 2>&1; then
  msg=$(mosquitto_sub -h "${published%:*}" -p "${published##*:}" -t mytopic -C 1 -W 20) ||
    fail "mosquitto_sub on the published port $published got nothing"
  [[ $msg == time:* ]] || fail "mosquitto_sub on $published got '$msg', want time:…"
  ok "published port $published delivers '$msg'"
else
  log "mosquitto_sub not installed: the published port $published is not checked"
fi

grep -q 'live page url=http://localhost:8080/' <<<"$broker_log" || fail "the broker's log does not give the live page's address"
page=$(compose port mqttserver 8080)
if command -v curl >/dev/null 2>&1; then
  curl -fsS "http://$page/" | grep -q '<title>mqttserver live</title>' || fail "no live page on the published port $page"
  ok "live page on the published port $page"
fi

sizes=""
for service in mqttserver mqttsubscriber mqttpublisher; do
  id=$(compose ps -q "$service")
  image=$(docker inspect -f '{{.Image}}' "$id")
  # The size as `docker images` shows it, which the docs quote.
  shown=$(docker images --no-trunc --format '{{.ID}} {{.Size}}' | awk -v id="$image" '$1 == id { print $2; exit }')
  sizes="$sizes $service $shown"
  size=$(docker image inspect -f '{{.Size}}' "$image")
  user=$(docker image inspect -f '{{.Config.User}}' "$image")
  restart=$(docker inspect -f '{{.HostConfig.RestartPolicy.Name}}' "$id")
  [ "$size" -le $((20 * 1000 * 1000)) ] || fail "$service image is $size bytes, over 20 MB"
  [ -n "$user" ] && [ "${user%%:*}" != 0 ] && [ "${user%%:*}" != root ] || fail "$service runs as '$user', want a user that is not root"
  [ "$restart" = unless-stopped ] || fail "$service restart policy is '$restart'"
  ok "$service image $shown, user $user, restart $restart"
done

# The broker's named volume is writable by the broker's user: it takes the owner of the image's /data.
volume=$(docker inspect -f '{{range .Mounts}}{{if eq .Destination "/data"}}{{.Name}}{{end}}{{end}}' "$server")
[ -n "$volume" ] || fail "the broker has no volume on /data"
owner=$(docker run --rm --network none -v "$volume:/data:ro" --entrypoint stat "$go_image" -c %u:%g /data 2>&1) ||
  fail "could not look into the volume $volume: $owner"
[ "$owner" = "$(docker image inspect -f '{{.Config.User}}' "$(docker inspect -f '{{.Image}}' "$server")")" ] ||
  fail "the broker's volume $volume is owned by $owner, not by the broker's user"
ok "broker's data volume $volume on /data, owned by $owner"

# MQTT_DATA on the volume: a retained message outlives the broker's container, and both clients
# find the new broker by themselves.
if command -v mosquitto_pub >/dev/null 2>&1; then
  topic=mqttdemo/compose-test/retained
  payload="kept-$$-$RANDOM"
  mosquitto_pub -h "${published%:*}" -p "${published##*:}" -t "$topic" -m "$payload" -r -q 1 ||
    fail "mosquitto_pub of a retained message failed"
  count() { grep -c "$2" <<<"$(logs "$1" | plain)" || true; }
  received_before=$(count mqttsubscriber 'RECEIVED .* time:')
  connected_before=$(count mqttsubscriber 'CONNECTED')
  phase "recreating the broker's container"
  compose up -d --no-deps --force-recreate mqttserver >"$work/recreate.log" 2>&1 ||
    { cat "$work/recreate.log" >&2; fail "could not recreate the broker"; }
  server=$(compose ps -q mqttserver)
  until_true 120 health || fail "the recreated broker is not healthy after 120 s"
  published=$(compose port mqttserver 1883)
  msg=$(mosquitto_sub -h "${published%:*}" -p "${published##*:}" -t "$topic" -C 1 -W 20) ||
    fail "the retained message did not survive the broker's new container"
  [ "$msg" = "$payload" ] || fail "retained message '$msg' after the restart, want '$payload'"
  ok "retained message kept on the data volume across a new broker container"
  reconnected() {
    [ "$(count mqttsubscriber 'CONNECTED')" -gt "$connected_before" ] &&
      [ "$(count mqttsubscriber 'RECEIVED .* time:')" -gt "$received_before" ]
  }
  until_true 60 reconnected || fail "the clients did not come back to the new broker within 60 s"
  ok "subscriber and publisher reconnect to the new broker by themselves"
fi

# Every MQTT_* setting of each program (its -h lists them) is in its service's environment, but those
# the compose file's header names as not passed through; and one set in the environment of docker
# compose reaches the containers.
config=$(compose config)
for service in mqttserver mqttsubscriber mqttpublisher; do
  case $service in
    mqttserver) skipped=" version healthcheck hash-password " ;;
    *) skipped=" version id clean store count timeout stdin " ;;
  esac
  usage=$(docker run --rm --network none "$(docker inspect -f '{{.Image}}' "$(compose ps -q "$service")")" -h 2>&1 || true)
  flags=$(sed -n 's/^  -\([a-z][a-z-]*\).*/\1/p' <<<"$usage")
  [ -n "$flags" ] || fail "$service -h listed no flags: $usage"
  # The service's block of the resolved compose file: from "  NAME:" to the next service.
  block=$(awk -v s="  $service:" '$0 == s { on = 1; next } on && /^  [^ ]/ { on = 0 } on' <<<"$config")
  missing=""
  for flag in $flags; do
    [[ $skipped == *" $flag "* ]] && continue
    name=MQTT_$(tr 'a-z-' 'A-Z_' <<<"$flag")
    grep -q "^      $name:" <<<"$block" || missing="$missing $name"
  done
  [ -z "$missing" ] || fail "docker-compose.yml does not pass$missing to $service"
done
ok "every MQTT_* setting of the three programs reaches its service"

phase "MQTT_QOS=1 docker compose up -d"
MQTT_QOS=1 compose up -d >"$work/qos.log" 2>&1 || { cat "$work/qos.log" >&2; fail "MQTT_QOS=1 docker compose up -d failed"; }
at_qos1() {
  local sub
  sub=$(logs mqttsubscriber | plain)
  grep -q 'SUBSCRIBED .*(qos 1)' <<<"$sub" && grep -q 'RECEIVED .* time:.*(qos 1,' <<<"$sub"
}
until_true 60 at_qos1 || fail "after MQTT_QOS=1 docker compose up -d, the subscriber did not subscribe and receive at QoS 1 within 60 s"
ok "MQTT_QOS=1 docker compose up -d: the clients subscribe and publish at QoS 1"

# docker stop sends SIGTERM to each program, process 1 of its container: each must end by itself
# (status 0), not be killed when the timeout runs out (137).
ids=$(compose ps -q)
compose stop --timeout 10 >"$work/stop.log" 2>&1 || { cat "$work/stop.log" >&2; fail "docker compose stop failed"; }
for id in $ids; do
  read -r name code <<<"$(docker inspect -f '{{.Name}} {{.State.ExitCode}}' "$id")"
  [ "$code" = 0 ] || fail "${name#/} ended with status $code on docker stop"
done
ok "docker compose stop: every program ends by itself on SIGTERM, status 0"

# --- Down -----------------------------------------------------------------------------------------
# The whole clean-up starts here, with --rmi local: down finds the images through the containers, so
# a second down after this one would remove none.
rmi=(--rmi local)
[ "${MQTTDEMO_KEEP_IMAGES:-}" != 1 ] || rmi=()
phase "docker compose down -v ${rmi[*]}"
compose down -v "${rmi[@]}" --remove-orphans --timeout 10 >"$work/down.log" 2>&1 ||
  { cat "$work/down.log" >&2; fail "docker compose down -v ${rmi[*]} failed"; }
compose_up=""
filter="label=com.docker.compose.project=$project"
left="$(docker ps -aq --filter "$filter")$(docker network ls -q --filter "$filter")$(docker volume ls -q --filter "$filter")"
[ -z "$left" ] || fail "docker compose down -v left: $left"
ok "docker compose down -v ${rmi[*]} leaves no container, network or volume"

builder_size=$(docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | awk -v r="$go_image" '$1 == r { print $2; exit }')
echo "compose-test: figures: docker compose up --build -d took $up_seconds s; images:$sizes; builder $go_image ${builder_size:-?}"

# --- The whole clean-up (docs/docker.md#removing-everything) --------------------------------------
if [ "${MQTTDEMO_KEEP_IMAGES:-}" = 1 ]; then
  log "MQTTDEMO_KEEP_IMAGES=1: the images and the build cache are kept"
else
  phase "the whole clean-up"
  {
    docker image prune -f &&
      { [ -z "$(docker images -q mqttdemo-gobuilder)" ] || docker rmi $(docker images -q mqttdemo-gobuilder); } &&
      docker builder prune -af
  } >"$work/clean.log" 2>&1 || { cat "$work/clean.log" >&2; fail "the whole clean-up failed"; }
  left=$(comm -13 <(echo "$images_before") <(docker images -aq --no-trunc | sort -u))
  [ -z "$left" ] || fail "the whole clean-up left images: $(docker images -a | grep -F "$(cut -c8-19 <<<"$left")")"
  cache=$(docker system df --format '{{.Type}} {{.Size}}' | sed -n 's/^Build Cache //p')
  [ "$cache" = 0B ] || fail "the whole clean-up left $cache of build cache"
  ok "the whole clean-up leaves no image of the project (builder included) and no build cache"
fi

phase "done"
echo "compose-test: $passed passed, 0 failed"
