"""The invoke API with real processes: profiles and tool use survive an agent service restart, and the persistence
demo (with its long-term memory part) runs end to end on the scripted model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from test_session_agent.testing import scripted_agent_env

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parent.parent / "test_session_demo.py"


def test_profile_and_tool_use_survive_agent_service_restart(
    backend_url: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    env, url = scripted_agent_env(backend_url, port_factory())
    with service_runner("test-session-agent", env, url, log=tmp_path / "agent.log"):
        profile = {"name": "Calc", "model_config": {"provider": "scripted"}, "tools": ["calculator"]}
        agent_id = httpx.post(f"{url}/api/v1/agents", json=profile).json()["agent_id"]
        r = httpx.post(
            f"{url}/api/v1/agents/{agent_id}/invoke",
            json={"prompt": 'use calculator {"expression": "2 ** 10"}'},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        sid = r.json()["session_id"]
        assert r.json()["response"] == "calculator returned: 1024"
    with service_runner("test-session-agent", env, url, log=tmp_path / "agent.log"):
        assert httpx.get(f"{url}/api/v1/agents/{agent_id}").json()["tools"] == ["calculator"]
        r = httpx.post(
            f"{url}/api/v1/agents/{agent_id}/invoke", json={"prompt": "and now?", "session_id": sid}, timeout=30
        )
        body = r.json()
        # restored from the backend: user, tool use, tool result, reply, then this turn's two messages
        assert body["status"]["cached_agent"] is False and body["status"]["conversation_length"] == 6
        history = httpx.get(f"{url}/sessions/{sid}/history").json()["messages"]
        blocks = [next(iter(m["content"][0])) for m in history]
        assert blocks == ["text", "toolUse", "toolResult", "text", "text", "text"]
        assert history[2]["content"][0]["toolResult"]["content"] == [{"text": "1024"}]


def test_demo_on_scripted_model(database_url: str) -> None:
    env = os.environ | {"DATABASE_URL": database_url, "MODEL_PROVIDER": "scripted"}
    out = subprocess.run([sys.executable, str(DEMO)], env=env, capture_output=True, text=True, timeout=300)
    print(out.stdout[-6000:], out.stderr[-2000:])
    assert out.returncode == 0
    for check in (
        "PASS  recalls Alice after restart",
        "PASS  user-123's fact was stored as a memory",
        "PASS  a new session of user-123 is given the memory",
        "PASS  user-456 is given no memory",
    ):
        assert check in out.stdout
    assert "injected context: Facts the user told you in earlier conversations:" in out.stdout
