#!/usr/bin/env bash
# A RabbitMQ cluster on this machine, on loopback only, to show the unchanged clients on a
# clustered broker (docs/cluster.md). Each node has its own name, ports and folders under
# CLUSTER_DIR; Erlang's port mapper (epmd) and the nodes' distribution listen on 127.0.0.1 only,
# on ports of their own, so a system RabbitMQ or epmd is neither used nor disturbed.
#
# Usage: scripts/cluster.sh up        install rabbitmq-server if missing (apt-get), start the
#                                      nodes, join them, print one MQTT broker URL per node
#        scripts/cluster.sh stop N    stop node N alone (to show a failure); `up` starts it again
#        scripts/cluster.sh down      stop every node and epmd, remove CLUSTER_DIR
#        scripts/cluster.sh urls      print the broker URLs
#        scripts/cluster.sh install   only install rabbitmq-server (and keep its service stopped)
#
# Environment: CLUSTER_DIR   state folder (default ${TMPDIR:-/tmp}/mqttdemo-cluster-$UID)
#              CLUSTER_PORT  first of the ports used (default 21880): epmd on CLUSTER_PORT, node N
#                            MQTT on +N, AMQP on +10+N, distribution on +20+N, rabbitmqctl +30..+39
#              CLUSTER_NODES number of nodes (default 2)
# The last two are read by `up` when it creates CLUSTER_DIR; later commands take them from there.
set -euo pipefail

dir=${CLUSTER_DIR:-${TMPDIR:-/tmp}/mqttdemo-cluster-$(id -u)}
base=${CLUSTER_PORT:-21880}
nodes=${CLUSTER_NODES:-2}
if [ -f "$dir/settings" ]; then
  read -r base nodes <"$dir/settings"
fi
bin=/usr/lib/rabbitmq/bin # the real scripts: /usr/sbin's wrappers switch to the rabbitmq user and lose the environment
# Deadline of each wait. A node starts in a few seconds, but one that was the MQTT plugin's Raft
# leader, restarted while its only peer waits, stalls 100 s in the plugin (docs/cluster.md).
wait_s=150

die() {
  echo "cluster: $*" >&2
  exit 1
}

node() { echo "rabbit$1@localhost"; }

# env_of N prints the environment of node N's server and of the rabbitmqctl calls that reach it.
env_of() {
  local n=$1 d="$dir/node$1"
  cat <<EOF
HOME=$dir
ERL_EPMD_ADDRESS=127.0.0.1
ERL_EPMD_PORT=$base
RABBITMQ_NODENAME=$(node "$n")
RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
RABBITMQ_NODE_PORT=$((base + 10 + n))
RABBITMQ_DIST_PORT=$((base + 20 + n))
RABBITMQ_CTL_DIST_PORT_MIN=$((base + 30))
RABBITMQ_CTL_DIST_PORT_MAX=$((base + 39))
RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}
RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}
RABBITMQ_CONF_ENV_FILE=$d/rabbitmq-env.conf
RABBITMQ_CONFIG_FILE=$d/rabbitmq.conf
RABBITMQ_ADVANCED_CONFIG_FILE=$d/advanced.config
RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins
RABBITMQ_MNESIA_BASE=$d/data
RABBITMQ_LOG_BASE=$d/log
RABBITMQ_PID_FILE=$d/rabbit.pid
EOF
}

# on N CMD… runs CMD with node N's environment, within the deadline.
on() {
  local n=$1
  shift
  local -a env
  mapfile -t env < <(env_of "$n")
  env "${env[@]}" timeout "$wait_s" "$@"
}

ctl() {
  local n=$1
  shift
  on "$n" "$bin/rabbitmqctl" -q -n "$(node "$n")" "$@"
}

running() { ctl "$1" ping >/dev/null 2>&1; }

urls() {
  for n in $(seq 1 "$nodes"); do echo "tcp://127.0.0.1:$((base + n))"; done
}

install() {
  [ -x "$bin/rabbitmq-server" ] && return
  command -v apt-get >/dev/null || die "please install rabbitmq-server (3.10 or later) with your package manager"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "cluster: installing rabbitmq-server" >&2
  # Keep apt from starting the system service: it would listen on every interface (5672, 25672).
  local policy=/usr/sbin/policy-rc.d made_policy=""
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee $policy >/dev/null
    $sudo chmod +x $policy
    made_policy=1
  fi
  $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends rabbitmq-server >/dev/null
  [ -z "$made_policy" ] || $sudo rm -f $policy
  # Where systemd runs, the unit is enabled for the next boot and epmd's socket unit is started:
  # disable both (ours use their own epmd on its own port).
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now rabbitmq-server epmd.socket epmd.service >/dev/null 2>&1 || true
  fi
}

# configure N writes node N's files once.
configure() {
  local n=$1 d="$dir/node$1"
  [ -f "$d/rabbitmq.conf" ] && return
  mkdir -p "$d/data" "$d/log"
  : >"$d/rabbitmq-env.conf" # instead of /etc/rabbitmq/rabbitmq-env.conf
  echo '[rabbitmq_mqtt].' >"$d/enabled_plugins"
  cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$((base + 10 + n))
mqtt.listeners.tcp.1 = 127.0.0.1:$((base + n))
# The demo's clients connect without credentials, as to mqttserver: the plugin logs them in as guest,
# whom RabbitMQ accepts from loopback only.
mqtt.allow_anonymous = true
mqtt.default_user = guest
mqtt.default_pass = guest
mqtt.vhost = /
mqtt.exchange = amq.topic
log.console = false
log.file.level = info
EOF
}

start() {
  local n=$1
  running "$n" && return
  echo "cluster: starting $(node "$n")" >&2
  on "$n" "$bin/rabbitmq-server" -detached >>"$dir/node$n/log/console.log" 2>&1 ||
    die "$(node "$n") did not start: see $dir/node$n/log"
}

# await N waits until node N runs RabbitMQ: rabbitmqctl fails at once while the node cannot be
# reached yet, so ask again until the deadline.
await() {
  local n=$1 deadline=$((SECONDS + wait_s))
  until ctl "$n" await_startup --timeout $((deadline - SECONDS + 1)) >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$(node "$n") did not come up within ${wait_s}s: see $dir/node$n/log"
    sleep 1
  done
}

member() { # member N: whether node N is in node 1's cluster
  ctl 1 cluster_status --formatter json 2>/dev/null | grep -q "\"$(node "$1")\""
}

up() {
  install
  mkdir -p "$dir"
  chmod 700 "$dir"
  [ -f "$dir/settings" ] || echo "$base $nodes" >"$dir/settings"
  if [ ! -f "$dir/.erlang.cookie" ]; then
    # The shared secret of the nodes and rabbitmqctl: read from $HOME, here $dir.
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/.erlang.cookie"
    chmod 400 "$dir/.erlang.cookie"
  fi
  on 1 epmd -address 127.0.0.1 -port "$base" -daemon
  for n in $(seq 1 "$nodes"); do
    configure "$n"
    start "$n"
  done
  for n in $(seq 1 "$nodes"); do await "$n"; done
  for n in $(seq 2 "$nodes"); do
    member "$n" && continue
    echo "cluster: joining $(node "$n") to $(node 1)" >&2
    local out cmd
    # Quiet unless it fails: join_cluster logs harmless errors about the stopped app's tables.
    for cmd in stop_app "join_cluster $(node 1)" start_app; do
      out=$(ctl "$n" $cmd 2>&1) || die "rabbitmqctl $cmd on $(node "$n"): $out"
    done
    await "$n"
  done
  urls
}

stop() {
  local n=$1
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le "$nodes" ] || die "no node $n (1 to $nodes)"
  [ -f "$dir/node$n/rabbit.pid" ] || return 0
  echo "cluster: stopping $(node "$n")" >&2
  # With the pid file, stop returns when the node's process has gone.
  ctl "$n" stop "$dir/node$n/rabbit.pid" >/dev/null 2>&1 || true
  local pid
  pid=$(cat "$dir/node$n/rabbit.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/node$n/rabbit.pid"
}

down() {
  [ -d "$dir" ] || return 0
  for n in $(seq "$nodes" -1 1); do stop "$n"; done
  on 1 epmd -port "$base" -kill >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case ${1:-} in
up) up ;;
stop) stop "${2:-}" ;;
down) down ;;
urls) urls ;;
install) install ;;
*)
  sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
