#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers on the host and port of CONVSIM_AMQP_URL.
#   broker.sh ensure   install rabbitmq-server from the Debian packages when missing, start it when
#                      nothing listens, wait until it is ready; a running broker is left alone.
#   broker.sh stop     stop the broker this script started.
# The broker it starts listens on loopback only (AMQP, management UI, epmd, Erlang distribution).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
amqp_url="${CONVSIM_AMQP_URL:-amqp://guest:guest@localhost:5672/}"
hostport="${amqp_url#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"; [ "$port" = "$hostport" ] && port=5672
node="rabbit@localhost"
conf_dir="/tmp/convsim-rabbitmq"

log() { echo "broker: $*" >&2; }

source "$here/scripts/debian.sh"

listening() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

install_server() {
  command -v rabbitmq-server >/dev/null && return 0
  log "rabbitmq-server is missing: installing the Debian package"
  apt_install rabbitmq-server
  # The package tries to start a service; we start our own, loopback-only, below.
  as_root service rabbitmq-server stop >/dev/null 2>&1 || true
}

loopback_env() {
  export RABBITMQ_NODENAME="$node"
  export RABBITMQ_CONFIG_FILE="$conf_dir/rabbitmq.conf"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

start_server() {
  loopback_env
  # The server runs as the rabbitmq user: give it a copy of the config it can read.
  as_root mkdir -p "$conf_dir"
  as_root cp "$here/deploy/rabbitmq/rabbitmq.conf" "$conf_dir/rabbitmq.conf"
  as_root chmod 755 "$conf_dir"; as_root chmod 644 "$conf_dir/rabbitmq.conf"
  as_root rabbitmq-plugins enable --offline rabbitmq_management >/dev/null
  mkdir -p "$here/.run"
  log "starting rabbitmq-server ($node, loopback only; log: .run/rabbitmq.log)"
  touch "$here/.run/broker.started"
  as_root env RABBITMQ_NODENAME="$RABBITMQ_NODENAME" RABBITMQ_CONFIG_FILE="$RABBITMQ_CONFIG_FILE" \
    ERL_EPMD_ADDRESS="$ERL_EPMD_ADDRESS" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS" \
    setsid rabbitmq-server >"$here/.run/rabbitmq.log" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    if listening && as_root env RABBITMQ_NODENAME="$node" rabbitmqctl -q await_startup --timeout 5 >/dev/null 2>&1; then
      log "ready on $host:$port, management UI on http://127.0.0.1:15672/ (guest/guest)"
      return 0
    fi
    sleep 1  # waiting for an external process to come up: poll with a bound
  done
  log "rabbitmq-server did not come up in 120 s; see .run/rabbitmq.log"; return 1
}

case "${1:-ensure}" in
  ensure)
    if listening; then exit 0; fi
    case "$host" in localhost|127.*|::1) ;; *) log "no broker answers at $host:$port"; exit 1 ;; esac
    install_server
    start_server
    ;;
  stop)
    loopback_env
    as_root env RABBITMQ_NODENAME="$node" rabbitmqctl -q stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 ensure|stop" >&2; exit 2 ;;
esac
