"""Restore: a fresh process builds an Agent on a session of 10,000 messages — PostgreSQLSessionManager vs
Strands' FileSessionManager. Each sample is a new interpreter; the time covers `Agent(...)` only (imports excluded)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from typing import Any

from .common import backend, median, scratch_database
from .seed import seed_files, seed_postgres

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from strands import Agent
    from strands.session.file_session_manager import FileSessionManager
    from test_session_agent import PostgreSQLSessionManager
    from test_session_agent.models.scripted import ScriptedModel

    kind, session_id, where = sys.argv[1:4]
    model = ScriptedModel()
    started = time.perf_counter()
    if kind == "postgresql":
        manager = PostgreSQLSessionManager(session_id, base_url=where)
    else:
        manager = FileSessionManager(session_id, storage_dir=where)
    agent = Agent(model=model, agent_id="default", session_manager=manager, callback_handler=None)
    elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "messages": len(agent.messages)}))
    """
)


def _sample(kind: str, session_id: str, where: str, expected: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, session_id, where], capture_output=True, text=True, check=True, timeout=300
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["messages"] != expected:
        raise RuntimeError(f"{kind} restored {result['messages']} messages, expected {expected}")
    return float(result["seconds"])


def run(messages: int = 10_000, samples: int = 5) -> dict[str, Any]:
    """Median restore seconds for both managers and their ratio (file / ours)."""
    session_id = "bench-restore"
    with scratch_database() as database_url, tempfile.TemporaryDirectory() as storage:
        seed_postgres(database_url, session_id, messages)
        seed_files(storage, session_id, messages)
        with backend(database_url) as url:
            _sample("postgresql", session_id, url, messages)  # warm the server's caches once
            ours, files = [], []
            for _ in range(samples):
                ours.append(_sample("postgresql", session_id, url, messages))
                files.append(_sample("file", session_id, storage, messages))
    ours_median, files_median = median(ours), median(files)
    return {
        "messages": messages,
        "postgresql_s": ours_median,
        "file_s": files_median,
        "speedup_vs_file": files_median / ours_median if ours_median else 0.0,
        "samples": samples,
    }
