#!/usr/bin/env bash
# Checks scripts/demo.sh for real, in a terminal (tmux): it builds and starts the three programs,
# messages flow, the output is prefixed and coloured, and each way of stopping it (Ctrl-C typed in
# its terminal, SIGINT or SIGTERM sent to the script) stops all three, leaves no process behind and
# removes its build directory.
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
# The pane stays after the script ends, so that its exit status can be read.
echo 'set -g remain-on-exit on' >"$work/tmux.conf"
sid=""

fail() {
  echo "demo-test: FAIL: $*" >&2
  if [ -f "$work/out" ]; then
    echo "--- demo output (last 40 lines)" >&2
    plain <"$work/out" | tail -n 40 >&2
  fi
  exit 1
}

plain() { sed 's/\x1b\[[0-9;]*m//g; s/\r$//; s/^\^C//'; }  # no colour, CR or echoed ^C

# left lists the processes still in the demo's session: the pane's, whose leader is demo.sh.
left() { [ -z "$sid" ] || ps -eo sid=,pid=,args= | awk -v s="$sid" '$1 == s { print }'; }

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
dead() { [ "$(pane '#{pane_dead}')" = 1 ]; }

# run_case NAME HOW WANT: runs demo.sh in a tmux pane until messages flow, stops it the way HOW
# says (ctrl-c: typed in the pane; INT or TERM: the signal sent to the script) and checks the end.
run_case() {
  local name=$1 how=$2 want=$3 pid status tmpdir
  : >"$work/out"
  "${tmux[@]}" kill-server 2>/dev/null || true
  "${tmux[@]}" new-session -d -s demo -x 200 -y 50 \
    "MQTTDEMO_PORT=$(free_port) exec '$root/scripts/demo.sh'"
  "${tmux[@]}" pipe-pane -t demo "cat >>'$work/out'"
  pid=$(pane '#{pane_pid}')
  sid=$pid # tmux makes the pane's process a session leader, and exec makes that demo.sh
  # go build, then broker, subscriber, publisher: generous for a loaded 2-core machine.
  until_true 120 seen 'RECEIVED .* time:' || fail "$name: no time: message received"
  seen '^mqttserver .*CONNECTED.*mqttsubscriber' || fail "$name: broker did not log the subscriber"
  seen '^mqttserver .*CONNECTED.*mqttpublisher' || fail "$name: broker did not log the publisher"
  grep -q $'\x1b\\[1;36mmqttsubscriber' "$work/out" || fail "$name: no coloured prefix in a terminal"
  case $how in
    ctrl-c) "${tmux[@]}" send-keys -t demo C-c ;;
    *) kill "-$how" "$pid" ;;
  esac
  until_true 20 dead || fail "$name: demo.sh still running 20 s after $how"
  status=$(pane '#{pane_dead_status}')
  [ "$status" = "$want" ] || fail "$name: exit status $status, want $want"
  # The kernel may take a moment to reap the last of them.
  until_true 5 test -z "$(left)" || fail "$name: processes left behind: $(left)"
  seen '^mqttpublisher .*SUMMARY' || fail "$name: the publisher did not print its summary"
  seen '^mqttserver .*DISCONNECTED.*mqttpublisher.*reason=normal' || fail "$name: the publisher did not disconnect before the broker stopped"
  seen '^mqttserver .*STOPPED' || fail "$name: the broker did not stop cleanly"
  tmpdir=$(plain <"$work/out" | sed -n 's/^building .* into //p')
  [ -n "$tmpdir" ] && [ ! -e "$tmpdir" ] || fail "$name: build directory '$tmpdir' not removed"
  sid=""
  echo "ok   demo.sh: $name"
}

run_case "Ctrl-C in its terminal" ctrl-c 130
run_case "SIGINT to the script" INT 130
run_case "SIGTERM to the script" TERM 143
echo "demo-test: 3 passed, 0 failed"
