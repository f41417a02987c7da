"""The real `session-backend` console script, started as a process and spoken to over HTTP."""

from __future__ import annotations

import signal
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_console_script_serves_and_keeps_data_across_restart(
    database_url: str, port_factory: Any, service_runner: Any
) -> None:
    port = port_factory()
    url = f"http://127.0.0.1:{port}"
    env = {"DATABASE_URL": database_url, "PORT": str(port), "SESSION_BACKEND_API_KEY": ""}
    with service_runner("session-backend", env, url, health="/ready") as proc:
        r = httpx.post(f"{url}/v1/sessions", json={"session_id": "proc-test", "session_type": "AGENT"})
        assert r.status_code == 201
    # uvicorn re-raises SIGTERM after a clean shutdown
    assert proc.returncode in (0, -signal.SIGTERM)
    with service_runner("session-backend", env, url, health="/ready"):
        assert httpx.get(f"{url}/v1/sessions/proc-test").json()["session_id"] == "proc-test"
