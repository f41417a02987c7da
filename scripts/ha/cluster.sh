#!/usr/bin/env bash
# A three-node Patroni cluster on this machine: one etcd and three PostgreSQL 15 servers, all on 127.0.0.1, with
# synchronous replication (`synchronous_mode: true`). Everything else is Patroni's defaults (ttl 30 s, loop_wait
# 10 s, retry_timeout 10 s, primary_start_timeout 300 s).
#
#   scripts/ha/cluster.sh start       # write the configs, start etcd and the three nodes, wait for a primary and a
#                                     # synchronous standby, print the backend's DATABASE_URL
#   scripts/ha/cluster.sh url         # the multi-host DATABASE_URL (target_session_attrs=read-write)
#   scripts/ha/cluster.sh status      # patronictl list
#   scripts/ha/cluster.sh ctl ARGS    # any patronictl command, e.g. `ctl switchover --force`
#   scripts/ha/cluster.sh primary     # name of the current primary (pg1, pg2 or pg3)
#   scripts/ha/cluster.sh kill-primary  # kill -9 the primary's postmaster (Patroni restarts it, or fails over)
#   scripts/ha/cluster.sh wait        # until there is a primary, a synchronous standby and a replica again
#   scripts/ha/cluster.sh stop        # stop everything and delete the data
#
# Settings (environment): HA_DIR (data, configs, logs; default /tmp/sessions-ha), HA_PG_PORTS (three ports,
# default "5441 5442 5443"), HA_API_PORTS (Patroni's REST API, default "8441 8442 8443"), HA_ETCD_PORTS (client
# and peer, default "2479 2480"), PG_BIN (default /usr/lib/postgresql/15/bin).
# Needs Debian's `patroni`, `etcd-server` and `etcd-client` (`apt-get install patroni etcd-server etcd-client`). PostgreSQL refuses to run as
# root, so as root the nodes run as the `postgres` user.
set -euo pipefail

HA_DIR=${HA_DIR:-/tmp/sessions-ha}
read -r -a PG_PORTS <<<"${HA_PG_PORTS:-5441 5442 5443}"
read -r -a API_PORTS <<<"${HA_API_PORTS:-8441 8442 8443}"
read -r -a ETCD_PORTS <<<"${HA_ETCD_PORTS:-2479 2480}"
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
SCOPE=sessions-ha
NODES=(pg1 pg2 pg3)

# setpriv execs (no child process), so `$!` below is Patroni's own pid.
AS_POSTGRES=()
[ "$(id -u)" = 0 ] && AS_POSTGRES=(setpriv --reuid=postgres --regid=postgres --init-groups)

ctl() {
  patronictl -c "$HA_DIR/pg1.yml" "$@"
}

url() {
  local hosts=()
  for port in "${PG_PORTS[@]}"; do hosts+=("127.0.0.1:$port"); done
  local IFS=,
  echo "postgresql://postgres@${hosts[*]}/postgres?target_session_attrs=read-write"
}

node_config() {  # $1 = index 0..2
  local name=${NODES[$1]} pg_port=${PG_PORTS[$1]} api_port=${API_PORTS[$1]}
  cat <<YAML
scope: $SCOPE
name: $name
log:
  dir: $HA_DIR/log/$name
restapi:
  listen: 127.0.0.1:$api_port
  connect_address: 127.0.0.1:$api_port
etcd3:
  hosts: 127.0.0.1:${ETCD_PORTS[0]}
bootstrap:
  dcs:
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: "on"
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
  # Local test cluster only: trust on 127.0.0.1 (a real one uses scram-sha-256 and TLS).
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:$pg_port
  connect_address: 127.0.0.1:$pg_port
  data_dir: $HA_DIR/$name
  bin_dir: $PG_BIN
  pgpass: $HA_DIR/$name.pgpass
  authentication:
    superuser: {username: postgres, password: postgres}
    replication: {username: replicator, password: replicator}
    rewind: {username: postgres, password: postgres}
  parameters:
    unix_socket_directories: $HA_DIR
    max_connections: 200
YAML
}

wait_for_cluster() {  # until a leader streams to a synchronous standby and a second replica
  local deadline=$((SECONDS + ${1:-180}))
  until ctl list -f json 2>/dev/null | python3 -c '
import json, sys
members = json.load(sys.stdin)
roles = sorted(m["Role"] for m in members if m["State"] in ("running", "streaming"))
sys.exit(roles != ["Leader", "Replica", "Sync Standby"])'; do
    if ((SECONDS > deadline)); then
      echo "the cluster did not come up; logs in $HA_DIR/log" >&2
      ctl list >&2 || true
      return 1
    fi
    sleep 1
  done
}

start() {
  command -v patroni >/dev/null && command -v etcd >/dev/null && command -v etcdctl >/dev/null || {
    echo "needs patroni and etcd: apt-get install patroni etcd-server etcd-client" >&2
    exit 1
  }
  mkdir -p "$HA_DIR/log/etcd" "${NODES[@]/#/$HA_DIR/log/}"
  for i in 0 1 2; do node_config "$i" >"$HA_DIR/${NODES[$i]}.yml"; done
  [ "$(id -u)" = 0 ] && chown -R postgres "$HA_DIR"

  setsid etcd --name ha --data-dir "$HA_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:${ETCD_PORTS[0]}" --advertise-client-urls "http://127.0.0.1:${ETCD_PORTS[0]}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PORTS[1]}" --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PORTS[1]}" \
    --initial-cluster "ha=http://127.0.0.1:${ETCD_PORTS[1]}" >"$HA_DIR/log/etcd/etcd.log" 2>&1 </dev/null &
  echo $! >"$HA_DIR/etcd.pid"
  local deadline=$((SECONDS + 30))
  until etcdctl --endpoints "127.0.0.1:${ETCD_PORTS[0]}" endpoint health >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "etcd did not start; see $HA_DIR/log/etcd/etcd.log" >&2; exit 1; }
    sleep 0.2
  done

  # The first node bootstraps (initdb) and becomes the primary; the others clone it with pg_basebackup.
  for i in 0 1 2; do
    setsid "${AS_POSTGRES[@]}" patroni "$HA_DIR/${NODES[$i]}.yml" >"$HA_DIR/log/${NODES[$i]}/stdout.log" 2>&1 </dev/null &
    echo $! >"$HA_DIR/${NODES[$i]}.pid"
    [ "$i" = 0 ] && { until ctl list -f json 2>/dev/null | grep -q '"Leader"'; do sleep 0.5; done; }
  done
  wait_for_cluster
  ctl list
  echo "DATABASE_URL=$(url)"
}

stop() {
  local pid
  for name in "${NODES[@]}" etcd; do  # Patroni stops its PostgreSQL on SIGTERM
    [ -f "$HA_DIR/$name.pid" ] && pid=$(cat "$HA_DIR/$name.pid") && kill "$pid" 2>/dev/null || true
  done
  for name in "${NODES[@]}" etcd; do
    [ -f "$HA_DIR/$name.pid" ] || continue
    pid=$(cat "$HA_DIR/$name.pid")
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  done
  # A PostgreSQL left behind by a Patroni killed with -9 (none when everything went well).
  for name in "${NODES[@]}"; do
    [ -f "$HA_DIR/$name/postmaster.pid" ] && kill -9 "$(head -1 "$HA_DIR/$name/postmaster.pid")" 2>/dev/null || true
  done
  rm -rf "$HA_DIR"
}

primary() {
  ctl list -f json | python3 -c 'import json, sys; print(next(m["Member"] for m in json.load(sys.stdin) if m["Role"] == "Leader"))'
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) url ;;
  status) ctl list ;;
  wait) wait_for_cluster ;;
  primary) primary ;;
  kill-primary)
    name=$(primary)
    kill -9 "$(head -1 "$HA_DIR/$name/postmaster.pid")"
    echo "$name"
    ;;
  ctl) shift; ctl "$@" ;;
  *) sed -n '2,21p' "$0"; exit 2 ;;
esac
