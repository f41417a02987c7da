#!/usr/bin/env bash
# `make stop`: stop the services `make run` started (SIGTERM, then SIGKILL after 30 s).
set -uo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=.data/run
for name in agent session-backend; do
  pidfile="$RUN_DIR/$name.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
done
