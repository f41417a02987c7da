"""`session-backend import-files DIR` and `session-backend export SESSION_ID`, as real processes on a real database."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from strands.session.file_session_manager import FileSessionManager
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType


class _MultiAgent:
    """The two attributes FileSessionManager reads from a multi-agent orchestrator."""

    def __init__(self, multi_agent_id: str, state: dict[str, Any]) -> None:
        self.id = multi_agent_id
        self._state = state

    def serialize_state(self) -> dict[str, Any]:
        return self._state


def write_file_sessions(root: Path, messages: int) -> None:
    """Two sessions as FileSessionManager stores them: agents with messages, one multi-agent state."""
    repo = FileSessionManager.__new__(FileSessionManager)  # the repository half only: no agent, no default session
    repo.storage_dir = str(root)
    root.mkdir(parents=True, exist_ok=True)
    for sid in ("file-a", "file-b"):
        repo.create_session(Session(session_id=sid, session_type=SessionType.AGENT))
        repo.create_agent(sid, SessionAgent(agent_id="default", state={"k": sid}, conversation_manager_state={}))
        for i in range(messages):
            content: dict[str, Any] = {"text": f"{sid} message {i}"}
            if i == 1:
                content = {"image": {"format": "png", "source": {"bytes": b"\x89PNG\x00"}}}
            role = "user" if i % 2 == 0 else "assistant"
            message: Any = {"role": role, "content": [content]}
            repo.create_message(sid, "default", SessionMessage(message=message, message_id=i))
    multi_agent: Any = _MultiAgent("graph-1", {"status": "completed", "completed_nodes": ["n1"]})
    repo.create_multi_agent("file-a", multi_agent)


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("session-backend", path=str(Path(sys.executable).parent)) or "session-backend"
    env = os.environ | {"DATABASE_URL": database_url}
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.integration
def test_import_is_complete_and_idempotent_then_export(database_url: str, tmp_path: Path, client: TestClient) -> None:
    root = tmp_path / "sessions"
    write_file_sessions(root, messages=120)

    first = cli(database_url, "import-files", str(root))
    assert first.returncode == 0, first.stderr
    assert "imported 2 sessions, 2 agents, 240 messages, 1 multi-agents (0 already present)" in first.stdout
    assert "240/240" in first.stderr or "240/240" in first.stdout  # the progress bar's last frame

    again = cli(database_url, "import-files", "--no-progress", str(root))
    assert again.returncode == 0, again.stderr
    assert "imported 0 sessions, 0 agents, 0 messages, 0 multi-agents" in again.stdout

    # What the file manager reads is what the backend serves.
    files = FileSessionManager.__new__(FileSessionManager)
    files.storage_dir = str(root)
    for sid in ("file-a", "file-b"):
        stored = client.get(f"/v1/sessions/{sid}/agents/default/messages").json()
        expected = [m.to_dict() for m in files.list_messages(sid, "default")]
        assert [m["message"] for m in stored] == [m["message"] for m in expected]
        assert [m["created_at"] for m in stored] == [m["created_at"] for m in expected]
        assert client.get(f"/v1/sessions/{sid}/agents/default").json()["state"] == {"k": sid}
    multi = client.get("/v1/sessions/file-a/multi-agents/graph-1").json()
    assert multi["state"] == files.read_multi_agent("file-a", "graph-1")

    # A message edited in the files after the first import: the file wins on the next one.
    edited = SessionMessage(message={"role": "user", "content": [{"text": "edited"}]}, message_id=0)
    files.update_message("file-b", "default", edited)
    third = cli(database_url, "import-files", "--no-progress", str(root))
    assert third.returncode == 0, third.stderr
    assert client.get("/v1/sessions/file-b/agents/default/messages/0").json()["message"]["content"] == [
        {"text": "edited"}
    ]

    out = tmp_path / "file-a.ndjson"
    export = cli(database_url, "export", "file-a", "-o", str(out))
    assert export.returncode == 0, export.stderr
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["type"] for r in records] == ["session", "agent", *["message"] * 120, "multi_agent"]
    assert records[0]["session_id"] == "file-a"
    assert records[2]["agent_id"] == "default" and records[2]["message_id"] == 0
    assert records[-1] == {"type": "multi_agent", "id": "graph-1", "state": files.read_multi_agent("file-a", "graph-1")}

    to_stdout = cli(database_url, "export", "file-b")
    assert to_stdout.returncode == 0
    assert len(to_stdout.stdout.splitlines()) == 122

    missing = cli(database_url, "export", "no-such-session")
    assert missing.returncode == 1
    assert "not found" in missing.stderr


@pytest.mark.integration
def test_import_refuses_a_missing_directory(database_url: str, tmp_path: Path) -> None:
    done = cli(database_url, "import-files", str(tmp_path / "absent"))
    assert done.returncode == 2
    assert "is not a directory" in done.stderr


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"message_0.json": "{}", "message_2.json": "{}"}, "message ids jump from 0 to 2"),
        ({"message_0.json": '{"message": NaN}'}, "message_0.json: not JSON"),
        ({"message_0.json": '{"message": '}, "message_0.json: not JSON"),
    ],
)
def test_malformed_sessions_are_refused_with_a_clear_reason(tmp_path: Path, files: dict[str, str], reason: str) -> None:
    """What `import-files` reports for a session it skips whole (issue 24): a gap in the ids, NaN, broken JSON."""
    from session_backend.cli_files import _check_contiguous, _message_files, _read_json

    messages = tmp_path / "agent_default" / "messages"
    messages.mkdir(parents=True)
    for name, text in files.items():
        (messages / name).write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=reason):
        found = _message_files(tmp_path / "agent_default")
        _check_contiguous(tmp_path / "agent_default", found)
        for path in found:
            _read_json(path)
