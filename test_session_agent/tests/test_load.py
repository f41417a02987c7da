"""100 concurrent sessions (distinct devices, scripted model) through a real agent-service process: every
conversation complete and independent. `make bench` runs the same at 100 and 1,000 sessions (bench/sessions_load.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bench.sessions_load import drive
from test_session_agent.testing import scripted_agent_env

pytestmark = pytest.mark.integration


def test_100_concurrent_sessions_complete_and_independent(
    backend_url: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    env, url = scripted_agent_env(backend_url, port_factory(), LOG_LEVEL="warning")
    with service_runner("test-session-agent", env, url, log=tmp_path / "agent.log"):
        result = asyncio.run(drive(url, sessions=100, turns=3))
    print(result.summary())
    assert result.problems == []
    assert len(result.latencies_ms) == 300
