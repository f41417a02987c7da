"""Per-turn overhead: one agent turn with an instant scripted model, with no session manager, Strands'
FileSessionManager, and PostgreSQLSessionManager (backend process + PostgreSQL on this machine, every write committed).
The backend runs as a user runs it: every setting at its default (log level info, access log on, written to a file).
Configurations alternate turn by turn so machine noise hits all of them alike."""

from __future__ import annotations

import tempfile
import time
import uuid
from typing import Any

from strands import Agent
from strands.session.file_session_manager import FileSessionManager

from test_session_agent import PostgreSQLSessionManager
from test_session_agent.models.scripted import ScriptedModel

from .common import backend, median, scratch_database


def _agent(manager: Any) -> Agent:
    return Agent(model=ScriptedModel(), agent_id="default", session_manager=manager, callback_handler=None)


def run(turns: int = 200, warmup: int = 20) -> dict[str, Any]:
    """Median turn time (ms) per configuration and each manager's overhead over no manager."""
    # Defaults only: no quieter log level, no lever switched, one worker (what `session-backend` gives a user).
    user_defaults = {"LOG_LEVEL": "info", "SESSION_BACKEND_WORKERS": "1"}
    with (
        scratch_database() as database_url,
        backend(database_url, env=user_defaults) as url,
        tempfile.TemporaryDirectory() as storage,
    ):
        agents = {
            "none": _agent(None),
            "file": _agent(FileSessionManager(f"t-{uuid.uuid4().hex[:8]}", storage_dir=storage)),
            "postgresql": _agent(PostgreSQLSessionManager(f"t-{uuid.uuid4().hex[:8]}", base_url=url)),
        }
        times: dict[str, list[float]] = {name: [] for name in agents}
        for i in range(warmup + turns):
            for name, agent in agents.items():
                started = time.perf_counter()
                agent(f"prompt {i}")
                elapsed = (time.perf_counter() - started) * 1000
                if i >= warmup:
                    times[name].append(elapsed)
    medians = {name: median(values) for name, values in times.items()}
    return {
        "turns": turns,
        "none_ms": medians["none"],
        "file_ms": medians["file"],
        "postgresql_ms": medians["postgresql"],
        "file_overhead_ms": medians["file"] - medians["none"],
        "postgresql_overhead_ms": medians["postgresql"] - medians["none"],
    }
