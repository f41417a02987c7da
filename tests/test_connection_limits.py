"""Both services close connections that hold a request open without sending it: idle after connecting, stopped
mid-headers, stopped mid-body (hardening round 2, finding 6). Real processes, a 1 s read timeout."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

STALLS = {
    "idle": b"",
    "mid-headers": b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Ty",
    "mid-body": b"POST /process HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    b'{"pr',
}


@pytest.fixture(scope="module")
def services(
    database_url: str, service_runner: Any, port_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, int]]:
    logs = tmp_path_factory.mktemp("limits")
    backend_port, agent_port = port_factory(), port_factory()
    backend_env = {
        "DATABASE_URL": database_url,
        "PORT": str(backend_port),
        "SESSION_BACKEND_API_KEY": "",
        "SESSION_BACKEND_READ_TIMEOUT_SECONDS": "1",
    }
    agent_env = {
        "PORT": str(agent_port),
        "SESSION_BACKEND_URL": f"http://127.0.0.1:{backend_port}",
        "MODEL_PROVIDER": "scripted",
        "AGENT_READ_TIMEOUT_SECONDS": "1",
    }
    backend_url, agent_url = f"http://127.0.0.1:{backend_port}", f"http://127.0.0.1:{agent_port}"
    with (
        service_runner("session-backend", backend_env, backend_url, health="/ready", log=logs / "backend.log"),
        service_runner("test-session-agent", agent_env, agent_url, log=logs / "agent.log"),
    ):
        yield {"backend": backend_port, "agent": agent_port}


def _closed_after(port: int, sent: bytes) -> float:
    """Seconds until the server closes a connection that sent `sent` and then nothing more."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(sent)
        while conn.recv(4096):  # a 4xx answer may come before the close
            pass
    return time.monotonic() - started


@pytest.mark.parametrize("service", ["backend", "agent"])
@pytest.mark.parametrize("stall", list(STALLS))
def test_stalled_connections_are_closed(services: dict[str, int], service: str, stall: str) -> None:
    waited = _closed_after(services[service], STALLS[stall])
    print(f"{service} {stall}: closed after {waited:.2f} s")
    assert waited < 8  # the socket's own 10 s timeout would raise instead


def test_requests_still_work(services: dict[str, int]) -> None:
    assert httpx.get(f"http://127.0.0.1:{services['backend']}/ready").status_code == 200
    r = httpx.post(f"http://127.0.0.1:{services['agent']}/process", json={"prompt": "hello"}, timeout=30)
    assert r.status_code == 200, r.text


def test_over_the_connection_limit_is_a_503_problem_with_retry_after(
    database_url: str, service_runner: Any, port_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Beyond `SESSION_BACKEND_MAX_CONNECTIONS` (per worker, uvicorn's count: this one included) a request gets the
    services' own 503 problem with `Retry-After`, not uvicorn's plain text; below it requests are served again."""
    port = port_factory()
    env = {
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "SESSION_BACKEND_API_KEY": "",
        "SESSION_BACKEND_WORKERS": "1",
        "SESSION_BACKEND_MAX_CONNECTIONS": "2",
    }
    url = f"http://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("over-limit")
    with service_runner("session-backend", env, url, health="/ready", log=logs / "backend.log"):
        assert httpx.get(f"{url}/health").status_code == 200  # one connection at a time: served
        with socket.create_connection(("127.0.0.1", port), timeout=10):  # a second one, held open and idle
            deadline = time.monotonic() + 30
            while True:  # until the server has accepted the idle one (no sleep tuned to the machine)
                r = httpx.get(f"{url}/health")
                if r.status_code == 503 or time.monotonic() > deadline:
                    break
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "1" and r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["status"] == 503 and r.json()["title"]
        deadline = time.monotonic() + 30
        while (r := httpx.get(f"{url}/health")).status_code != 200 and time.monotonic() < deadline:
            pass
        assert r.status_code == 200
