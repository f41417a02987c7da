"""Snapshot save and restore of a 10,000-message agent: `SnapshotSessionManager` on `PostgreSQLStorage` vs on
Strands' `LocalFileStorage`, same run, same agent. Times cover `sync_agent` (capture, serialize, write latest) and
building a new `Agent` from the latest snapshot (read, deserialize, load)."""

from __future__ import annotations

import tempfile
import time
import uuid
from typing import Any

from strands import Agent
from strands.session.snapshot_session_manager import SnapshotSessionManager
from strands.storage import LocalFileStorage
from strands.storage.storage import Storage

from test_session_agent import PostgreSQLStorage
from test_session_agent.models.scripted import ScriptedModel

from .common import backend, median, scratch_database


def _messages(count: int) -> list[dict[str, Any]]:
    return [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": [{"text": f"message {i}: the quick brown fox jumps over the lazy dog, turn {i // 2}"}],
        }
        for i in range(count)
    ]


def _measure(storage: Storage, messages: list[dict[str, Any]], samples: int) -> tuple[float, float, int]:
    session_id = f"bench-{uuid.uuid4().hex[:8]}"
    agent = Agent(
        model=ScriptedModel(),
        agent_id="default",
        messages=messages,  # type: ignore[arg-type]
        session_manager=SnapshotSessionManager(session_id, storage=storage),
        callback_handler=None,
    )
    manager = agent._session_manager
    assert isinstance(manager, SnapshotSessionManager)
    saves, restores = [], []
    restored = 0
    for _ in range(samples):
        started = time.perf_counter()
        manager.sync_agent(agent)
        saves.append(time.perf_counter() - started)
        started = time.perf_counter()
        fresh = Agent(
            model=ScriptedModel(),
            agent_id="default",
            session_manager=SnapshotSessionManager(session_id, storage=storage),
            callback_handler=None,
        )
        restores.append(time.perf_counter() - started)
        restored = len(fresh.messages)
    return median(saves), median(restores), restored


def run(messages: int = 10_000, samples: int = 5) -> dict[str, Any]:
    """Median save and restore seconds on both storages, and the ratios (file / ours)."""
    history = _messages(messages)
    with scratch_database() as database_url, tempfile.TemporaryDirectory() as directory:
        with backend(database_url) as url:
            _measure(PostgreSQLStorage(url, prefix="warm-up"), history[:100], 1)
            ours_save, ours_restore, ours_count = _measure(PostgreSQLStorage(url, prefix="bench"), history, samples)
        file_save, file_restore, file_count = _measure(LocalFileStorage(directory), history, samples)
    if ours_count != messages or file_count != messages:
        raise RuntimeError(f"restored {ours_count} (ours) and {file_count} (file) messages, expected {messages}")
    return {
        "messages": messages,
        "postgresql_save_s": ours_save,
        "file_save_s": file_save,
        "postgresql_restore_s": ours_restore,
        "file_restore_s": file_restore,
        "save_ratio": file_save / ours_save if ours_save else 0.0,
        "restore_ratio": file_restore / ours_restore if ours_restore else 0.0,
        "samples": samples,
    }


if __name__ == "__main__":
    print(run())
