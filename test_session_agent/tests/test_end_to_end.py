"""End to end with real processes: the agent service restarted between turns keeps the conversation
(scripted model), and the persistence demo itself on the real local model."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from test_session_agent.testing import scripted_agent_env

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parent.parent / "test_session_demo.py"


def test_agent_service_restart_keeps_conversation(
    backend_url: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    env, url = scripted_agent_env(backend_url, port_factory())
    sid = f"e2e-{uuid.uuid4().hex[:8]}"
    with service_runner("test-session-agent", env, url, log=tmp_path / "agent.log"):
        r = httpx.post(f"{url}/process", json={"prompt": "Hello, my name is Alice", "session_id": sid}, timeout=30)
        assert r.status_code == 200
    with service_runner("test-session-agent", env, url, log=tmp_path / "agent.log"):
        r = httpx.post(f"{url}/process", json={"prompt": "What is my name?", "session_id": sid}, timeout=30)
        body = r.json()
        assert body["status"]["cached_agent"] is False and body["status"]["conversation_length"] == 4
        assert "first: Hello, my name is Alice" in body["response"]


@pytest.mark.slow  # the real local model: `make test` runs it, `pytest -m "not slow"` skips it
@pytest.mark.timeout(1200)  # above the demo's own 900 s: on a loaded 2-core machine it has taken 10 min
def test_demo_on_real_local_model(database_url: str) -> None:
    env = os.environ | {"DATABASE_URL": database_url, "MODEL_PROVIDER": "local"}
    out = subprocess.run([sys.executable, str(DEMO)], env=env, capture_output=True, text=True, timeout=900)
    print(out.stdout[-4000:], out.stderr[-2000:])
    assert out.returncode == 0
    assert "PASS  recalls Alice after restart" in out.stdout


def test_agent_service_503_while_backend_down_then_recovers(
    database_url: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    backend_port, agent_port = port_factory(), port_factory()
    backend_url, agent_url = f"http://127.0.0.1:{backend_port}", f"http://127.0.0.1:{agent_port}"
    backend_env = {"DATABASE_URL": database_url, "PORT": str(backend_port), "SESSION_BACKEND_API_KEY": ""}
    agent_env, _ = scripted_agent_env(backend_url, agent_port)
    sid = f"down-{uuid.uuid4().hex[:8]}"
    with service_runner("test-session-agent", agent_env, agent_url, log=tmp_path / "agent.log"):
        with service_runner("session-backend", backend_env, backend_url, health="/ready", log=tmp_path / "b1.log"):
            assert httpx.post(f"{agent_url}/process", json={"prompt": "one", "session_id": sid}).status_code == 200
        r = httpx.post(f"{agent_url}/process", json={"prompt": "two", "session_id": sid}, timeout=30)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "unavailable" in r.json()["detail"]
        assert httpx.get(f"{agent_url}/sessions/{sid}/history").status_code == 503
        with service_runner("session-backend", backend_env, backend_url, health="/ready", log=tmp_path / "b2.log"):
            r = httpx.post(f"{agent_url}/process", json={"prompt": "three", "session_id": sid}, timeout=30)
            assert r.status_code == 200
            history = httpx.get(f"{agent_url}/sessions/{sid}/history").json()["messages"]
            # the failed turn left nothing behind: one, its reply, three, its reply
            assert [m["content"][0]["text"] for m in history if m["role"] == "user"] == ["one", "three"]
