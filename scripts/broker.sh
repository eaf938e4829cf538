#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers on the host and port of CONVSIM_AMQP_URL.
#   broker.sh ensure   install rabbitmq-server from the Debian packages when missing, start it when
#                      nothing listens, wait until it is ready; a running broker is left alone.
#   broker.sh stop     stop the broker this script started.
#   broker.sh install  install rabbitmq-server when missing (no broker is started).
#   broker.sh secure-epmd
#                      stop an epmd that listens beyond loopback and serves no node (the package's).
#   broker.sh scheduler-flags
#                      print the Erlang flags the broker would start with (see below).
# The broker it starts listens on loopback only (AMQP, management UI, epmd, Erlang distribution),
# whatever the package started when it was installed.
# CONVSIM_BROKER_SCHEDULERS: the Erlang VM's schedulers (and dirty CPU schedulers) for the broker
# it starts; default 1 on a machine with 2 CPUs or fewer, where the broker shares its cores with
# the services (measured: half the broker's CPU per message there, docs/benchmarks.md), else
# Erlang's own default (one per CPU).
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

epmd_port="${ERL_EPMD_PORT:-4369}"

install_server() {
  command -v rabbitmq-server >/dev/null && return 0
  log "rabbitmq-server is missing: installing the Debian package"
  # The package's postinst starts its service (a broker on every interface): forbid service
  # starts during the install (policy-rc.d, Debian's switch), unless a policy is in place.
  local policy=/usr/sbin/policy-rc.d own_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"; own_policy=1
  fi
  local status=0
  apt_install rabbitmq-server || status=$?
  [ -n "$own_policy" ] && as_root rm -f "$policy"
  [ "$status" = 0 ] || return "$status"
  # In case something started it anyway: we start our own, loopback-only, below. (This, like
  # any rabbitmqctl run without our environment, leaves an epmd on every interface:
  # secure_epmd stops it.)
  as_root service rabbitmq-server stop >/dev/null 2>&1 || true
}

# Addresses an epmd listens on at $epmd_port, one a line (empty: none).
epmd_addresses() {
  command -v ss >/dev/null || return 0
  ss -ltnH "sport = :$epmd_port" 2>/dev/null | awk '{a=$4; sub(/:[0-9]+$/, "", a); print a}'
}

# An epmd beyond loopback (the package's, started before our environment could say otherwise)
# would also serve our node: stop it while no node depends on it; refuse to go on otherwise.
secure_epmd() {
  local exposed
  exposed="$(epmd_addresses | grep -v -E '^(127\.[0-9.]+|\[::1\]|::1)$' || true)"
  [ -z "$exposed" ] && return 0
  if ERL_EPMD_PORT="$epmd_port" epmd -names 2>/dev/null | grep -q '^name '; then
    log "an epmd serving running Erlang nodes listens on $(echo $exposed) port $epmd_port;" \
      "stop those nodes and epmd, then run this again"
    return 1
  fi
  log "stopping an epmd that listens on $(echo $exposed) (it serves no node); ours is loopback-only"
  as_root env ERL_EPMD_PORT="$epmd_port" epmd -kill >/dev/null 2>&1 || true
  for _ in $(seq 1 50); do
    [ -z "$(epmd_addresses)" ] && return 0
    sleep 0.1  # waiting for an external process to exit: poll with a bound
  done
  log "epmd did not stop"; return 1
}

scheduler_args() {
  local schedulers="${CONVSIM_BROKER_SCHEDULERS:-}"
  if [ -z "$schedulers" ] && [ "$(nproc)" -le 2 ]; then schedulers=1; fi
  case "$schedulers" in
    "") ;;
    *[!0-9]*|0) log "CONVSIM_BROKER_SCHEDULERS must be a whole number of at least 1"; return 2 ;;
    *) echo " +S $schedulers:$schedulers +SDcpu $schedulers:$schedulers" ;;
  esac
}

loopback_env() {
  export RABBITMQ_NODENAME="$node"
  export RABBITMQ_CONFIG_FILE="$conf_dir/rabbitmq.conf"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

start_server() {
  local flags
  flags="$(scheduler_args)" || exit 2
  loopback_env
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS+="$flags"
  # The server runs as the rabbitmq user: give it a copy of the config it can read.
  as_root mkdir -p "$conf_dir"
  as_root cp "$here/deploy/rabbitmq/rabbitmq.conf" "$conf_dir/rabbitmq.conf"
  as_root chmod 755 "$conf_dir"; as_root chmod 644 "$conf_dir/rabbitmq.conf"
  as_root rabbitmq-plugins enable --offline rabbitmq_management >/dev/null
  mkdir -p "$here/.run"
  log "starting rabbitmq-server ($node, loopback only${flags:+, Erlang flags$flags}; log: .run/rabbitmq.log)"
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
    secure_epmd
    start_server
    ;;
  install)
    install_server
    ;;
  secure-epmd)
    secure_epmd
    ;;
  scheduler-flags)
    scheduler_args || exit 2
    ;;
  stop)
    loopback_env
    as_root env RABBITMQ_NODENAME="$node" rabbitmqctl -q stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 ensure|install|stop|secure-epmd|scheduler-flags" >&2; exit 2 ;;
esac
