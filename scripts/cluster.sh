#!/usr/bin/env bash
# A local RabbitMQ cluster on loopback, from the Debian package, for the cluster tests and for people.
#   cluster.sh up           start the nodes (each with the management plugin), cluster them with
#                           join_cluster, wait until all of them run; running nodes are left alone
#   cluster.sh down         kill every node and remove the cluster's state (its base directory)
#   cluster.sh kill NODE    SIGKILL that node's Erlang VM (NODE: 2, convsim2 or convsim2@localhost)
#   cluster.sh start NODE   start that node again: it rejoins the cluster it belongs to (a node
#                           whose server ends while starting is started once more)
#   cluster.sh status       each node's ports and whether it runs, then the cluster's status
#   cluster.sh urls         the nodes' AMQP URLs, comma-separated (for CONVSIM_AMQP_URL)
#   cluster.sh ctl NODE ARGS...
#                           rabbitmqctl against that node (with the cluster's cookie)
#   cluster.sh streams NODE ARGS...
#                           rabbitmq-streams against that node (e.g. add_replica, stream_status)
# It lives beside the single broker of `make broker` (rabbit@localhost on 5672/15672/25672): other
# node names, other ports, its own data, its own Erlang cookie, and it never stops that node or epmd.
# Settings (environment):
#   CONVSIM_CLUSTER_SIZE=3               number of nodes
#   CONVSIM_CLUSTER_NODE_PREFIX=convsim  node N is <prefix>N@localhost
#   CONVSIM_CLUSTER_DIR=.run/cluster     base directory: cookie, one directory per node
#   CONVSIM_CLUSTER_AMQP_PORT=5681       node N listens on AMQP port + N - 1
#   CONVSIM_CLUSTER_MANAGEMENT_PORT=15681  management API / UI port of node 1 (+ N - 1)
#   CONVSIM_CLUSTER_DIST_PORT=25681      Erlang distribution port of node 1 (+ N - 1)
#   CONVSIM_CLUSTER_START_TIMEOUT_S=90   bound on waiting for a node to start (each start)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
size="${CONVSIM_CLUSTER_SIZE:-3}"
prefix="${CONVSIM_CLUSTER_NODE_PREFIX:-convsim}"
base="${CONVSIM_CLUSTER_DIR:-$here/.run/cluster}"
amqp_port0="${CONVSIM_CLUSTER_AMQP_PORT:-5681}"
mgmt_port0="${CONVSIM_CLUSTER_MANAGEMENT_PORT:-15681}"
dist_port0="${CONVSIM_CLUSTER_DIST_PORT:-25681}"
start_timeout_s="${CONVSIM_CLUSTER_START_TIMEOUT_S:-90}"
rabbit_bin="${CONVSIM_RABBITMQ_BIN_DIR:-/usr/lib/rabbitmq/bin}"
marker=".convsim-cluster"
self="$here/scripts/cluster.sh"
dist_args="-kernel inet_dist_use_interface {127,0,0,1}"

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

case "$base" in /*) ;; *) base="$here/$base" ;; esac

node_name() { echo "$prefix$1@localhost"; }
amqp_port() { echo $((amqp_port0 + $1 - 1)); }
mgmt_port() { echo $((mgmt_port0 + $1 - 1)); }
dist_port() { echo $((dist_port0 + $1 - 1)); }
node_dir() { echo "$base/$prefix$1"; }

# NODE as 2, convsim2 or convsim2@localhost -> 2
node_index() {
  local arg="${1:-}" n
  n="${arg%@localhost}"; n="${n#"$prefix"}"
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le "$size" ] ||
    die "no node '$arg' (nodes: 1..$size, or $(node_name 1) ...)"
  echo "$n"
}

[ "$prefix" != "rabbit" ] || die "the node prefix 'rabbit' would clash with the single broker"

# Run a command with node N's environment: its own name, ports, data, config, plugins, and the
# cluster's cookie (HOME=$base); epmd and distribution on loopback only.
with_node() {
  local i="$1" dir; shift
  dir="$(node_dir "$i")"
  env HOME="$base" \
    RABBITMQ_NODENAME="$(node_name "$i")" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$(amqp_port "$i")" \
    RABBITMQ_DIST_PORT="$(dist_port "$i")" \
    RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" \
    RABBITMQ_PID_FILE="$dir/beam.pid" \
    ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$dist_args" \
    RABBITMQ_CTL_ERL_ARGS="$dist_args" \
    "$@"
}

ctl() { local i="$1"; shift; with_node "$i" "$rabbit_bin/rabbitmqctl" -n "$(node_name "$i")" "$@"; }
streams() { local i="$1"; shift; with_node "$i" "$rabbit_bin/rabbitmq-streams" -n "$(node_name "$i")" "$@"; }

# The pid of node N's Erlang VM, if it runs (its pid file, checked against the process: a beam
# with that node name in its environment).
beam_pid() {
  local pidfile pid
  pidfile="$(node_dir "$1")/beam.pid"
  [ -s "$pidfile" ] || return 1
  pid="$(tr -dc 0-9 <"$pidfile")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = beam.smp ] || return 1
  tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qx "RABBITMQ_NODENAME=$(node_name "$1")" || return 1
  echo "$pid"
}

# Whether process PID exists and has not ended (a zombie has ended).
alive() { [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

prepare_base() {
  mkdir -p "$base"
  touch "$base/$marker"
  if [ ! -s "$base/.erlang.cookie" ]; then
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -dc 0-9a-f | tr a-f A-F >"$base/.erlang.cookie")
  fi
  chmod 400 "$base/.erlang.cookie"
}

prepare_node() {
  local i="$1" dir
  dir="$(node_dir "$i")"
  mkdir -p "$dir/mnesia" "$dir/log"
  : >"$dir/rabbitmq-env.conf"  # not the package's /etc/rabbitmq/rabbitmq-env.conf
  echo "[rabbitmq_management]." >"$dir/enabled_plugins"
  cat >"$dir/rabbitmq.conf" <<EOF
# $(node_name "$i"): loopback only (written by scripts/cluster.sh)
listeners.tcp.default = 127.0.0.1:$(amqp_port "$i")
management.tcp.ip = 127.0.0.1
management.tcp.port = $(mgmt_port "$i")
# quorum queue and stream leaders spread over the nodes, not all on the declaring client's node
queue_leader_locator = balanced
EOF
}

# The process that runs node N's server, by node, for the nodes this script started; and the
# size of node N's own log when it was started (the log is appended to across starts).
declare -A spawned=() log_offset=()

node_log() { echo "$(node_dir "$1")/log/$(node_name "$1").log"; }
node_log_size() { stat -c %s "$(node_log "$1")" 2>/dev/null || echo 0; }

# Start node N in the background (its own session, no inherited descriptors).
spawn_node() {
  local i="$1" dir port
  dir="$(node_dir "$i")"
  unset "spawned[$i]"
  if beam_pid "$i" >/dev/null; then return 0; fi
  for port in "$(amqp_port "$i")" "$(mgmt_port "$i")" "$(dist_port "$i")"; do
    ! listening "$port" || die "port $port (for $(node_name "$i")) is taken by another process"
  done
  prepare_node "$i"
  # server.log is what this start prints; the previous start's is kept as server.log.1
  [ ! -s "$dir/server.log" ] || mv -f "$dir/server.log" "$dir/server.log.1"
  log_offset[$i]="$(node_log_size "$i")"
  log "starting $(node_name "$i") (AMQP $(amqp_port "$i"), management $(mgmt_port "$i"), distribution $(dist_port "$i"); log: $dir/server.log)"
  # A lock or pipe held by the caller (flock, pytest) must not live on in the broker.
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd="${fd##*/}"; [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null || true
    done
    cd "$dir"
    exec setsid "$self" __serve "$i" >"$dir/server.log" 2>&1 </dev/null
  ) &
  spawned[$i]=$!
}

# What node N printed while starting and the end of what this start wrote to its own log, for
# a failure message.
start_output() {
  local i="$1" file offset="${log_offset[$1]:-0}" shown=""
  file="$(node_dir "$i")/server.log"
  if [ -s "$file" ]; then
    echo "--- the last lines of $file:"; tail -n 25 "$file"; shown=1
  fi
  if [ "$(node_log_size "$i")" -gt "$offset" ]; then
    file="$(node_log "$i")"
    echo "--- the last lines this start wrote to $file:"
    tail -c +$((offset + 1)) "$file" | tail -n 25; shown=1
  fi
  [ -n "$shown" ] || echo "--- $(node_name "$i") printed nothing (server.log and its log are empty)"
}

# Wait until node N accepts clients, each start for at most start_timeout_s. A node this script
# started and whose server ended while starting is started once more, at once (a supervisor such
# as systemd restarts it on failure too): what it printed goes to stderr either way.
await_node() {
  local i="$1" deadline=$((SECONDS + start_timeout_s)) attempts=1
  while :; do
    if listening "$(amqp_port "$i")" && ctl "$i" -q await_startup --timeout 10 >/dev/null 2>&1; then
      return 0
    fi
    if [ -n "${spawned[$i]:-}" ] && ! alive "${spawned[$i]}"; then
      wait "${spawned[$i]}" 2>/dev/null || true
      if [ "$attempts" -ge 2 ]; then
        start_output "$i" >&2
        die "$(node_name "$i") ended while starting, twice; see $(node_dir "$i")"
      fi
      log "$(node_name "$i") ended while starting; starting it once more. It printed:"
      start_output "$i" >&2
      attempts=$((attempts + 1))
      deadline=$((SECONDS + start_timeout_s))
      spawn_node "$i"
    elif [ -z "${spawned[$i]:-}" ] && ! beam_pid "$i" >/dev/null; then
      die "$(node_name "$i") is not running; see $(node_dir "$i")/server.log"
    fi
    if [ $SECONDS -ge "$deadline" ]; then
      start_output "$i" >&2
      die "$(node_name "$i") did not start in $start_timeout_s s (start $attempts); see $(node_dir "$i")"
    fi
    sleep 0.5  # waiting for an external process to come up: poll with a bound
  done
}

# The running nodes of the cluster, one a line, as node N sees them.
running_nodes() {
  ctl "$1" -q cluster_status --formatter json 2>/dev/null |
    sed -n 's/.*"running_nodes":\[\([^]]*\)\].*/\1/p' | tr -d '"' | tr ',' '\n' | sed '/^$/d'
}

join_node() {
  local i="$1" first
  first="$(node_name 1)"
  if running_nodes 1 | grep -qx "$(node_name "$i")"; then return 0; fi
  log "$(node_name "$i") joins $first"
  ctl "$i" -q stop_app >/dev/null
  ctl "$i" -q join_cluster "$first" >/dev/null
  ctl "$i" -q start_app >/dev/null
}

await_running() {
  local want="$1" deadline=$((SECONDS + start_timeout_s)) i have
  while :; do
    for i in $(seq 1 "$size"); do
      beam_pid "$i" >/dev/null || continue
      have="$(running_nodes "$i" | wc -l)"
      [ "$have" = "$want" ] && return 0
      break
    done
    [ $SECONDS -lt "$deadline" ] || die "the cluster did not reach $want running nodes in $start_timeout_s s"
    sleep 0.5  # waiting for the nodes to see each other: poll with a bound
  done
}

urls() {
  local i out=""
  for i in $(seq 1 "$size"); do
    out="$out${out:+,}amqp://guest:guest@127.0.0.1:$(amqp_port "$i")/"
  done
  echo "$out"
}

ensure_server() {
  [ -x "$rabbit_bin/rabbitmq-server" ] && return 0
  bash "$here/scripts/broker.sh" install
  [ -x "$rabbit_bin/rabbitmq-server" ] || die "no $rabbit_bin/rabbitmq-server after installing rabbitmq-server"
}

up() {
  local i
  ensure_server
  bash "$here/scripts/broker.sh" secure-epmd
  prepare_base
  for i in $(seq 1 "$size"); do spawn_node "$i"; done
  for i in $(seq 1 "$size"); do await_node "$i"; done
  for i in $(seq 2 "$size"); do join_node "$i"; done
  await_running "$size"
  log "$size nodes running; CONVSIM_AMQP_URL=$(urls)"
  log "management UI: http://127.0.0.1:$(mgmt_port 1)/ (guest/guest; node N on $mgmt_port0 + N - 1)"
}

kill_node() {
  local i="$1" pid deadline
  pid="$(beam_pid "$i")" || { log "$(node_name "$i") is not running"; return 0; }
  log "SIGKILL $(node_name "$i") (pid $pid)"
  kill -KILL "$pid"
  deadline=$((SECONDS + 10))
  while alive "$pid"; do
    [ $SECONDS -lt "$deadline" ] || die "pid $pid still runs after SIGKILL"
    sleep 0.05  # waiting for the kernel to end the process: poll with a bound
  done
}

start_node() {
  local i="$1"
  [ -d "$(node_dir "$i")/mnesia" ] || die "$(node_name "$i") has no state: run '$0 up' first"
  if beam_pid "$i" >/dev/null; then log "$(node_name "$i") already runs"; return 0; fi
  spawn_node "$i"
  await_node "$i"
  log "$(node_name "$i") runs again"
}

down() {
  local i pids=()
  [ -d "$base" ] || return 0
  [ -e "$base/$marker" ] || die "$base is not a cluster directory of this script: not removing it"
  # The state is removed next: a graceful stop would only write what is about to be deleted
  # (it took 20 s at the end of a test session, a SIGKILL takes milliseconds).
  for i in $(seq 1 "$size"); do kill_node "$i" & pids+=("$!"); done
  for i in "${pids[@]}"; do wait "$i" || true; done
  for i in $(seq 1 "$size"); do
    ! beam_pid "$i" >/dev/null || die "$(node_name "$i") still runs: not removing $base"
  done
  rm -rf "$base"
  log "stopped, state removed ($base)"
}

status() {
  local i state first=""
  for i in $(seq 1 "$size"); do
    if beam_pid "$i" >/dev/null; then state=running; first="${first:-$i}"; else state=stopped; fi
    printf '%s\t%s\tamqp %s\tmanagement %s\tdistribution %s\n' "$(node_name "$i")" "$state" \
      "$(amqp_port "$i")" "$(mgmt_port "$i")" "$(dist_port "$i")"
  done
  [ -n "$first" ] || { log "no node runs"; return 3; }
  ctl "$first" cluster_status
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  kill) kill_node "$(node_index "${2:-}")" ;;
  start) ensure_server; start_node "$(node_index "${2:-}")" ;;
  status) status ;;
  urls) urls ;;
  ctl) i="$(node_index "${2:-}")"; shift 2; ctl "$i" "$@" ;;
  streams) i="$(node_index "${2:-}")"; shift 2; streams "$i" "$@" ;;
  __serve) i="$(node_index "${2:-}")"; with_node "$i" "$rabbit_bin/rabbitmq-server" ;;
  *) echo "usage: $0 up|down|kill NODE|start NODE|status|urls|ctl NODE ARGS...|streams NODE ARGS..." >&2; exit 2 ;;
esac
