"""Issue 24, fidelity: what FileSessionManager stores, the backend stores and gives back unchanged.

A user migrating from `FileSessionManager`: sessions built with Strands (a NUL, 25!, unicode, tools, an interrupt,
redaction, Graph and Swarm state), `session-backend import-files`, the conversation continued through
`PostgreSQLSessionManager` (scripted model), `session-backend export`, then compared field by field with what
`FileSessionManager` reads back from a copy continued the same way.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from fastapi.testclient import TestClient
from strands import Agent, tool
from strands.session.file_session_manager import FileSessionManager
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from service_kit import jsoncodec
from test_session_agent import PostgreSQLSessionManager
from test_session_agent.api.app import create_app
from test_session_agent.models.scripted import ScriptedModel
from test_session_agent.service import tools as service_tools
from test_session_agent.settings import AgentSettings

pytestmark = pytest.mark.integration

FACTORIAL_25 = math.factorial(25)
assert FACTORIAL_25 == 15511210043330985984000000
NUL_TEXT = "header\x00binary\x00tail"
UNICODE = (
    "RTL: שלום עולם مرحبا | ZWJ: 👩\u200d👩\u200d👧\u200d👦 🏳️\u200d🌈 | astral: 𝄞 𐍈 🀄 | "
    "separators: a\u2028b\u2029c | BOM: \ufeffstart | combining: e\u0301 | nul: \x00"
)


@tool
def read_blob(path: str) -> dict[str, Any]:
    """Read a binary-ish file and compute something big about it.

    Args:
        path: the file to read.
    """
    return {
        "status": "success",
        "content": [{"text": f"{path}: {NUL_TEXT}"}, {"json": {"factorial_25": FACTORIAL_25, "ratio": 0.1}}],
    }


class _MultiAgent:
    """The two attributes FileSessionManager reads from a multi-agent orchestrator (Graph or Swarm)."""

    def __init__(self, multi_agent_id: str, state: dict[str, Any]) -> None:
        self.id = multi_agent_id
        self._state = state

    def serialize_state(self) -> dict[str, Any]:
        return self._state


def _file_repo(root: Path) -> FileSessionManager:
    repo = FileSessionManager.__new__(FileSessionManager)  # the repository half only
    repo.storage_dir = str(root)
    return repo


def build_sessions(root: Path) -> None:
    """Sessions as Strands writes them: one from a real agent turn with a tool, one written record by record."""
    # 1. A real Strands agent on FileSessionManager: a tool call whose result holds a NUL and 25!, agent state.
    agent = Agent(
        model=ScriptedModel(),
        tools=[read_blob],
        session_manager=FileSessionManager(session_id="fid-agent", storage_dir=str(root)),
        callback_handler=None,
    )
    agent.state.set("big", FACTORIAL_25)
    agent.state.set("unicode", UNICODE)
    agent(f"Hello {UNICODE}")
    agent('use read_blob {"path": "/tmp/blob.bin"}')

    # 2. Records written through FileSessionManager's repository: interrupt state, redaction, Graph and Swarm state.
    repo = _file_repo(root)
    sid = "fid-records"
    repo.create_session(Session(session_id=sid, session_type=SessionType.AGENT))
    interrupt_state = {
        "interrupts": {
            "approval-1": {"id": "approval-1", "name": "approve", "reason": {"amount": FACTORIAL_25}, "response": "ok"}
        },
        "context": {"note": NUL_TEXT},
        "activated": False,  # answered: the conversation goes on with a plain prompt
    }
    repo.create_agent(
        sid,
        SessionAgent(
            agent_id="default",
            state={"counter": -(2**80), "float": 1.5e25, "nested": [UNICODE, {"n": FACTORIAL_25}]},
            conversation_manager_state={"__name__": "SlidingWindowConversationManager", "removed_message_count": 0},
            _internal_state={"interrupt_state": interrupt_state},
        ),
    )
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"text": UNICODE}]},
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "t-1", "name": "read_blob", "input": {"n": FACTORIAL_25}}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": "t-1",
                        "status": "success",
                        "content": [{"text": NUL_TEXT}, {"json": {"big": FACTORIAL_25, "small": -1, "pi": 3.14159}}],
                    }
                }
            ],
        },
        {"role": "assistant", "content": [{"text": "done \x00 " + UNICODE}]},
    ]
    for i, message in enumerate(messages):
        redact: Any = {"role": "user", "content": [{"text": "[redacted \x00]"}]} if i == 0 else None
        repo.create_message(sid, "default", SessionMessage(message=message, message_id=i, redact_message=redact))  # type: ignore[arg-type]
    repo.create_multi_agent(
        sid,
        _MultiAgent(  # type: ignore[arg-type]
            "graph-1",
            {
                "type": "graph",
                "status": "completed",
                "completed_nodes": ["a"],
                "node_results": {"a": NUL_TEXT},
                "big": FACTORIAL_25,
            },
        ),
    )
    repo.create_multi_agent(
        sid,
        _MultiAgent(  # type: ignore[arg-type]
            "swarm-1",
            {"type": "swarm", "status": "executing", "current_node": "b", "shared_context": {"u": UNICODE}},
        ),
    )


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    exe = shutil.which("session-backend", path=str(Path(sys.executable).parent)) or "session-backend"
    env = os.environ | {"DATABASE_URL": database_url}
    return subprocess.run([exe, *args], env=env, capture_output=True, timeout=300, check=False)


def continue_turn(session_manager: Any) -> None:
    agent = Agent(model=ScriptedModel(), tools=[read_blob], session_manager=session_manager, callback_handler=None)
    agent('use read_blob {"path": "/tmp/again.bin"}')
    agent("thanks \x00 " + UNICODE)


def export(database_url: str, session_id: str) -> list[dict[str, Any]]:
    done = cli(database_url, "export", session_id)
    assert done.returncode == 0, done.stderr
    return [jsoncodec.loads(line) for line in done.stdout.splitlines()]


def _without_times(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("created_at", "updated_at")}


def compare(root: Path, session_id: str, lines: list[dict[str, Any]], imported: int) -> None:
    """Every stored field equals what FileSessionManager reads back (timestamps: for the imported records)."""
    repo = _file_repo(root)
    agents = [line for line in lines if line["type"] == "agent"]
    assert [a["agent_id"] for a in agents] == ["default"]
    file_agent = repo.read_agent(session_id, "default")
    assert file_agent is not None
    exported_agent = {k: v for k, v in agents[0].items() if k not in ("type", "version")}
    assert _without_times(exported_agent) == _without_times(file_agent.to_dict())

    file_messages = [m.to_dict() for m in repo.list_messages(session_id, "default", limit=None)]
    exported = [
        {k: v for k, v in line.items() if k not in ("type", "agent_id")} for line in lines if line["type"] == "message"
    ]
    assert len(exported) == len(file_messages) >= imported
    for ours, theirs in zip(exported, file_messages, strict=True):
        assert ours["message_id"] == theirs["message_id"]
        if ours["message_id"] >= imported:  # written by two live turns: a tracking id and a latency of their own
            for message in (ours["message"], theirs["message"]):
                message.pop("tracking_id", None)
                message.get("metadata", {}).pop("metrics", None)
        assert ours["message"] == theirs["message"], ours["message_id"]
        assert ours["redact_message"] == theirs["redact_message"]
        assert json.dumps(ours["message"]) == json.dumps(theirs["message"])  # types too: an int stays an int
    for ours, theirs in zip(exported[:imported], file_messages[:imported], strict=False):
        assert (ours["created_at"], ours["updated_at"]) == (theirs["created_at"], theirs["updated_at"])

    for line in lines:
        if line["type"] == "multi_agent":
            assert line["state"] == repo.read_multi_agent(session_id, line["id"])


def test_file_sessions_survive_import_continue_and_export(database_url: str, backend_url: str, tmp_path: Path) -> None:
    root = tmp_path / "files"
    build_sessions(root)
    assert "\\u0000" in (root / "session_fid-records/agents/agent_default/messages/message_2.json").read_text()
    # A broken session next to them: reported and skipped whole, the others imported.
    broken = root / "session_fid-broken"
    shutil.copytree(root / "session_fid-records", broken)
    (broken / "session.json").write_text(
        (broken / "session.json").read_text().replace("fid-records", "fid-broken"), encoding="utf-8"
    )
    (broken / "agents/agent_default/messages/message_3.json").write_text('{"message": NaN}', encoding="utf-8")

    done = cli(database_url, "import-files", "--no-progress", str(root))
    assert done.returncode == 1, done.stdout
    report = done.stdout.decode()
    assert "imported 2 sessions" in report and "1 sessions not imported" in report
    assert "fid-broken: " in report and "message_3.json" in report
    assert cli(database_url, "export", "fid-broken").returncode == 1  # nothing of it was written

    imported = {
        sid: len(_file_repo(root).list_messages(sid, "default", limit=None)) for sid in ("fid-agent", "fid-records")
    }
    # Right after the import: every record as FileSessionManager reads it, timestamps included.
    records = export(database_url, "fid-records")
    compare(root, "fid-records", records, imported["fid-records"])
    agent = next(line for line in records if line["type"] == "agent")
    assert agent["state"]["counter"] == -(2**80) and agent["state"]["nested"][1]["n"] == FACTORIAL_25
    assert type(agent["state"]["float"]) is float and agent["state"]["float"] == 1.5e25
    assert agent["_internal_state"]["interrupt_state"]["interrupts"]["approval-1"]["reason"]["amount"] == FACTORIAL_25
    assert {line["id"] for line in records if line["type"] == "multi_agent"} == {"graph-1", "swarm-1"}

    # Continued: through PostgreSQLSessionManager here, through FileSessionManager on a copy of the files.
    continued = tmp_path / "continued"
    shutil.copytree(root, continued)
    for sid in imported:
        continue_turn(PostgreSQLSessionManager(session_id=sid, base_url=backend_url))
        continue_turn(FileSessionManager(session_id=sid, storage_dir=str(continued)))
        lines = export(database_url, sid)
        compare(continued, sid, lines, imported[sid])
        assert FACTORIAL_25 in [
            block.get("json", {}).get("factorial_25")
            for line in lines
            if line["type"] == "message"
            for c in line["message"]["content"]
            if "toolResult" in c
            for block in c["toolResult"]["content"]
        ]
    # A re-import of the same files changes nothing and still reports the broken one.
    again = cli(database_url, "import-files", "--no-progress", str(root))
    assert again.returncode == 1 and "imported 0 sessions" in again.stdout.decode()


def test_a_live_turn_keeps_a_nul_and_a_big_int_of_a_tool_result(
    agent_settings: AgentSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the agent service: a tool result with a NUL and 25! is stored (it was a 422 and a failed turn)."""
    monkeypatch.setattr(service_tools, "TOOLS", MappingProxyType(dict(service_tools.TOOLS) | {"read_blob": read_blob}))
    with TestClient(create_app(agent_settings, model=ScriptedModel())) as service:
        r = service.post("/api/v1/agents", json={"name": "Blob", "system_prompt": "Be brief.", "tools": ["read_blob"]})
        assert r.status_code == 201, r.text
        agent_id = r.json()["agent_id"]
        prompt = 'use read_blob {"path": "/tmp/a\\u0000b.bin", "size": 15511210043330985984000000}'
        r = service.post(f"/api/v1/agents/{agent_id}/invoke", json={"prompt": prompt})
        assert r.status_code == 200, r.text
        sid = r.json()["session_id"]
        assert NUL_TEXT in r.json()["response"]
    # A new process (no cached agent): the turn's messages come back from the backend exactly, and the next works.
    with TestClient(create_app(agent_settings, model=ScriptedModel())) as service:
        history = service.get(f"/sessions/{sid}/history").json()["messages"]
        tool_use = history[1]["content"][0]["toolUse"]
        assert tool_use["input"] == {"path": "/tmp/a\x00b.bin", "size": FACTORIAL_25}
        result = history[2]["content"][0]["toolResult"]["content"]
        assert result == [
            {"text": f"/tmp/a\x00b.bin: {NUL_TEXT}"},
            {"json": {"factorial_25": FACTORIAL_25, "ratio": 0.1}},
        ]
        r = service.post(f"/api/v1/agents/{agent_id}/invoke", json={"prompt": "and now?", "session_id": sid})
        assert r.status_code == 200, r.text
        assert r.json()["status"]["conversation_length"] == 6
