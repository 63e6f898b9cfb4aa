#!/usr/bin/env bash
# Checks scripts/demo.sh for real, in a terminal (tmux): it builds and starts the three programs,
# messages flow, the output is prefixed and coloured, and each way of stopping it (Ctrl-C typed in
# its terminal, SIGINT or SIGTERM sent to the script) stops all three, leaves no process behind and
# removes its build directory; and with another broker (Mosquitto) on its port, it starts nothing
# and says how to choose another.
#
# Usage: scripts/demo-test.sh      (needs tmux: scripts/install-deps.sh installs it)
set -euo pipefail

if [ $# -gt 0 ]; then
  sed -n '/^# Usage:/,/^[^#]/s/^# \{0,1\}//p' "$0" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
command -v tmux >/dev/null 2>&1 || { echo "demo-test: tmux is needed (scripts/install-deps.sh)" >&2; exit 1; }
work=$(mktemp -d)
# A tmux server of our own: no other tmux user's sessions or environment.
tmux=(tmux -L "mqttdemo-test-$$" -f "$work/tmux.conf")
: >"$work/tmux.conf"
sid=""     # the pane's session
wrapper="" # the pane's first process, which runs demo.sh and keeps its exit status

fail() {
  echo "demo-test: FAIL: $*" >&2
  if [ -f "$work/out" ]; then
    echo "--- demo output (last 40 lines)" >&2
    plain <"$work/out" | tail -n 40 >&2
  fi
  exit 1
}

plain() { sed 's/\x1b\[[0-9;]*m//g; s/\r$//; s/^\^C//'; }  # no colour, CR or echoed ^C

# left lists the processes still in the demo's session but for the wrapper.
left() { [ -z "$sid" ] || ps -eo sid=,pid=,args= | awk -v s="$sid" -v w="$wrapper" '$1 == s && $2 != w { print }'; }

cleanup() {
  local pids
  pids=$(left | awk '{ print $2 }')
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  "${tmux[@]}" kill-server 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# until_true SECONDS COMMAND…: polls COMMAND every 0.1 s until it succeeds or SECONDS pass.
until_true() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

seen() { grep -q "$@" <<<"$(plain <"$work/out")"; } # not a pipe into grep -q: pipefail
pane() { "${tmux[@]}" display-message -p -t demo "$1"; }
dead() { [ -s "$work/status" ]; }

# run_case NAME HOW WANT: runs demo.sh in a tmux pane until messages flow, stops it the way HOW
# says (ctrl-c: typed in the pane; INT or TERM: the signal sent to the script) and checks the end.
run_case() {
  local name=$1 how=$2 want=$3 pid status tmpdir
  : >"$work/out"
  rm -f "$work/status"
  "${tmux[@]}" kill-server 2>/dev/null || true
  # The pane runs a wrapper that runs demo.sh in the foreground, as a shell at a prompt does, and
  # writes its exit status (tmux's own record of it is not reliable). The wrapper's trap is a
  # handler, not an ignore, so demo.sh gets Ctrl-C as usual. It then stays, so that tmux does not
  # have to reap it before the check for processes left behind.
  "${tmux[@]}" new-session -d -s demo -x 200 -y 50 \
    "MQTTDEMO_PORT=$(free_port) MQTTDEMO_HTTP_PORT=$(free_port) exec bash -c 'trap : INT TERM; \"\$0\"; echo \$? >\"\$1\"; exec sleep 600' '$root/scripts/demo.sh' '$work/status'" \; \
    pipe-pane -t demo "cat >>'$work/out'" # in the same command: before tmux reads the first line
  wrapper=$(pane '#{pane_pid}')
  sid=$wrapper # tmux makes the pane's process a session leader
  if [ "$how" = early-ctrl-c ]; then
    # While it builds or waits for the broker: the foreground command must not swallow it.
    until_true 60 seen '^building' || fail "$name: demo.sh did not start"
    how=ctrl-c
  else
    # go build, then broker, subscriber, publisher: generous for a loaded 2-core machine.
    until_true 120 seen 'RECEIVED .* time:' || fail "$name: no time: message received"
    # Each program's lines come through a pipe of their own: the broker's may come a moment later.
    until_true 10 seen '^mqttserver .*CONNECTED.*mqttsubscriber' || fail "$name: broker did not log the subscriber"
    until_true 10 seen '^mqttserver .*CONNECTED.*mqttpublisher' || fail "$name: broker did not log the publisher"
    grep -q $'\x1b\\[1;36mmqttsubscriber' "$work/out" || fail "$name: no coloured prefix in a terminal"
  fi
  pid=$(ps -o pid=,args= --ppid "$wrapper" | awk '/demo\.sh/ { print $1 }')
  [ -n "$pid" ] || fail "$name: no demo.sh process under the pane"
  case $how in
    ctrl-c) "${tmux[@]}" send-keys -t demo C-c ;;
    *) kill "-$how" "$pid" ;;
  esac
  until_true 20 dead || fail "$name: demo.sh still running 20 s after $how: $(ps -o pid,pgid,stat,wchan:20,args -s "$sid")"
  status=$(cat "$work/status")
  [ "$status" = "$want" ] || fail "$name: exit status $status, want $want"
  # The kernel may take a moment to reap the last of them.
  none_left() { last=$(left); [ -z "$last" ]; }
  until_true 10 none_left || fail "$name: processes left behind: $last"
  if [ "$name" != "$early" ]; then
    seen '^mqttpublisher .*SUMMARY' || fail "$name: the publisher did not print its summary"
    seen '^mqttserver .*DISCONNECTED.*mqttpublisher.*reason=normal' || fail "$name: the publisher did not disconnect before the broker stopped"
    seen '^mqttserver .*STOPPED' || fail "$name: the broker did not stop cleanly"
  fi
  tmpdir=$(plain <"$work/out" | sed -n 's/^building .* into //p')
  [ -n "$tmpdir" ] && [ ! -e "$tmpdir" ] || fail "$name: build directory '$tmpdir' not removed"
  sid="" wrapper=""
  echo "ok   demo.sh: $name"
}

# taken_port: with another broker on its port, demo.sh says so and what to do, and starts nothing.
taken_port() {
  local port status=0 mosquitto
  mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  [ -x "$mosquitto" ] || fail "taken port: mosquitto is needed (scripts/install-deps.sh)"
  port=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$work/mosquitto.conf"
  "$mosquitto" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
  local other=$!
  listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
  until_true 10 listening || { kill "$other"; fail "taken port: mosquitto did not start"; }
  MQTTDEMO_PORT=$port "$root/scripts/demo.sh" >"$work/out" 2>&1 || status=$?
  kill "$other"
  wait "$other" 2>/dev/null || true
  [ "$status" = 1 ] || fail "taken port: exit status $status, want 1"
  seen "port $port on 127.0.0.1 is taken" || fail "taken port: no word about the port"
  [ "$(tail -n 1 "$work/out")" = "      MQTTDEMO_PORT=$((port == 1884 ? 1885 : 1884)) scripts/demo.sh" ] ||
    fail "taken port: the last line does not say what to run"
  ! seen '^building' || fail "taken port: demo.sh built the programs before it checked the port"
  echo "ok   demo.sh: a taken port"
}

early="Ctrl-C while it starts"
taken_port
run_case "Ctrl-C in its terminal" ctrl-c 130
run_case "$early" early-ctrl-c 130
run_case "SIGINT to the script" INT 130
run_case "SIGTERM to the script" TERM 143
echo "demo-test: 5 passed, 0 failed"
