#!/usr/bin/env bash
# Runs the whole demo on this machine in one terminal: the broker, a subscriber and a publisher,
# built once into a temporary directory, their output interleaved with a coloured name in front of
# each line. Ctrl-C (or SIGTERM to this script) stops all three and removes the build.
#
# Usage: scripts/demo.sh
#   MQTTDEMO_PORT   port of the broker, on 127.0.0.1 (default 1883)
#   MQTTDEMO_HTTP_PORT  port of the broker's live page, on 127.0.0.1 (default 8080)
#   MQTT_*          passed to all three programs, e.g. MQTT_TOPIC=demo/time or MQTT_COLOR=never
#                   (MQTT_LISTEN and MQTT_BROKER are set from MQTTDEMO_PORT)
set -euo pipefail

if [ $# -gt 0 ]; then
  sed -n '/^# Usage:/,/^[^#]/s/^# \{0,1\}//p' "$0" >&2
  exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
port=${MQTTDEMO_PORT:-1883}
http_port=${MQTTDEMO_HTTP_PORT:-8080}

# A port is a number from 1 to 65535; checked first, so that a typo is named as such.
for var in MQTTDEMO_PORT MQTTDEMO_HTTP_PORT; do
  value=$port
  [ "$var" = MQTTDEMO_HTTP_PORT ] && value=$http_port
  if ! [[ "$value" =~ ^[0-9]{1,5}$ ]] || [ "$((10#$value))" -lt 1 ] || [ "$((10#$value))" -gt 65535 ]; then
    echo "demo: $var=$value is not a port: give a number from 1 to 65535" >&2
    exit 2
  fi
done

# Before anything starts: with another broker on the port, the clients would reach that one.
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "demo: port $port on 127.0.0.1 is taken (another MQTT broker?); choose another with MQTTDEMO_PORT, e.g." >&2
  echo "      MQTTDEMO_PORT=$((port == 1884 ? 1885 : 1884)) scripts/demo.sh" >&2
  exit 1
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$http_port") 2>/dev/null; then
  echo "demo: port $http_port on 127.0.0.1 (the live page) is taken; choose another with MQTTDEMO_HTTP_PORT, e.g." >&2
  echo "      MQTTDEMO_HTTP_PORT=$((http_port == 8081 ? 8082 : 8081)) scripts/demo.sh" >&2
  exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mqttdemo.XXXXXX")
pids=()      # the three programs, in start order: server, subscriber, publisher
printers=()  # the processes that prefix their lines

# The programs' output goes through pipes, which they do not colour by themselves.
color=never
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-}" != dumb ]; then
  color=always
fi
export MQTT_COLOR=${MQTT_COLOR:-$color}

alive() { kill -0 "$1" 2>/dev/null; }

# stop sends SIGTERM to the given processes and waits for them, at most 5 s, then kills them.
stop() {
  local pid left
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    left=0
    for pid in "$@"; do alive "$pid" && left=1; done
    [ "$left" -eq 0 ] && break
    sleep 0.1
  done
  for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

cleanup() {
  trap - INT TERM EXIT
  # The clients first, so that they leave with a DISCONNECT instead of seeing the broker vanish.
  if [ ${#pids[@]} -gt 1 ]; then stop "${pids[@]:1}"; fi
  if [ ${#pids[@]} -gt 0 ]; then stop "${pids[0]}"; fi
  # Each printer ends at the end of its program's output: wait, so no line comes after the prompt.
  if [ ${#printers[@]} -gt 0 ]; then wait "${printers[@]}" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# prefix NAME COLOUR: copies stdin to stdout with "NAME | " in front of each line, one write a line,
# and to $tmp/NAME.log, where the script looks for the subscriber's SUBSCRIBED.
prefix() {
  local label line
  if [ "$MQTT_COLOR" = always ]; then
    label=$(printf '\033[%sm%-14s |\033[0m' "$2" "$1")
  else
    label=$(printf '%-14s |' "$1")
  fi
  while IFS= read -r line || [ -n "$line" ]; do
    printf '%s %s\n' "$label" "$line"
    printf '%s\n' "$line" >>"$tmp/$1.log"
  done
}

# start NAME COLOUR [VAR=value…]: runs the program NAME in the background with its output prefixed.
start() {
  local name=$1 colour=$2
  shift 2
  # Through a named pipe rather than `prog | prefix &`, so that both process ids are known.
  mkfifo "$tmp/$name.out"
  # Job control (set -m) puts each background process in a process group of its own, so Ctrl-C
  # reaches this script only; cleanup then stops the clients before the broker, and each says
  # goodbye in order. Only while starting them: a foreground command (go build, the health probe)
  # would otherwise get the terminal, and a Ctrl-C while it runs would not reach the script.
  set -m
  prefix "$name" "$colour" <"$tmp/$name.out" &
  printers+=($!)
  # stdin from /dev/null: a program reading the terminal from the background would be stopped.
  env "$@" "$tmp/$name" </dev/null >"$tmp/$name.out" 2>&1 &
  pids+=($!)
  set +m
}

# In two steps, so that the long silent part says what it is: on a new machine Go downloads the
# modules (its "go: downloading" lines), then compiles for about a minute; later runs take seconds.
(cd "$root" && go list -deps ./mqttserver ./mqttsubscriber ./mqttpublisher >/dev/null)
echo "building mqttserver, mqttsubscriber and mqttpublisher (the first time: about a minute) into $tmp" >&2
(cd "$root" && go build -o "$tmp/" ./mqttserver ./mqttsubscriber ./mqttpublisher)

start mqttserver '1;35' MQTT_LISTEN="127.0.0.1:$port" MQTT_HTTP_LISTEN="127.0.0.1:$http_port"
# The clients would wait for the broker by themselves; starting them once it answers keeps the
# output in the order a reader expects.
for _ in $(seq 100); do
  alive "${pids[0]}" || break
  MQTT_LISTEN="127.0.0.1:$port" "$tmp/mqttserver" -healthcheck 2>/dev/null && break
  sleep 0.1
done
if ! alive "${pids[0]}"; then
  wait "${pids[0]}" || true
  echo "demo: mqttserver did not start (is port $port or $http_port taken? try MQTTDEMO_PORT=1884 MQTTDEMO_HTTP_PORT=8081)" >&2
  exit 1
fi
start mqttsubscriber '1;36' MQTT_BROKER="tcp://127.0.0.1:$port"
# The publisher once the subscriber listens, so that the first message has a reader (at most 10 s).
for _ in $(seq 100); do
  grep -q SUBSCRIBED "$tmp/mqttsubscriber.log" 2>/dev/null && break
  alive "${pids[1]}" || break
  sleep 0.1
done
start mqttpublisher '1;33' MQTT_BROKER="tcp://127.0.0.1:$port"
echo "demo: running; the live page is http://127.0.0.1:$http_port/ ; press Ctrl-C to stop all three" >&2

# Until Ctrl-C, or until one of them ends by itself (then the others are stopped too).
if [ "${BASH_VERSINFO[0]}" -gt 5 ] || { [ "${BASH_VERSINFO[0]}" -eq 5 ] && [ "${BASH_VERSINFO[1]}" -ge 1 ]; }; then
  status=0
  wait -n "${pids[@]}" || status=$?
else # bash before 5.1 (macOS's 3.2) cannot wait for one of several processes: poll
  status=0
  while alive "${pids[0]}" && alive "${pids[1]}" && alive "${pids[2]}"; do sleep 0.5; done
fi
echo "demo: a program ended (status $status); stopping the others" >&2
exit "$status"
