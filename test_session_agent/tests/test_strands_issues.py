"""Strands 1.62's open persistence issues, each reproduced with Strands itself on our client, and fixed server-side.

Each test is named after the upstream strands-agents issue it reproduces.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from strands import Agent, ToolContext, tool
from strands.agent import _continuation
from strands.agent.conversation_manager import SlidingWindowConversationManager
from strands.hooks import BeforeModelCallEvent
from strands.session.snapshot_session_manager import SnapshotSessionManager
from strands.types.content import Message
from strands.types.interrupt import InterruptResponseContent

from test_session_agent import PostgreSQLSessionManager, PostgreSQLSessionRepository, PostgreSQLStorage
from test_session_agent.models.scripted import ScriptedModel

pytestmark = pytest.mark.integration


def _agent(backend_url: str, session_id: str, **kwargs: Any) -> Agent:
    return Agent(
        model=ScriptedModel(),
        agent_id="default",
        session_manager=PostgreSQLSessionManager(session_id, base_url=backend_url),
        callback_handler=None,
        **kwargs,
    )


def test_issue_4420_continuation_merged_into_live_message_is_one_message_after_restore(backend_url: str) -> None:
    """#4420: a same-role continuation merged into the live message was stored as an extra row (same tracking_id)."""
    session_id = f"i4420-{uuid.uuid4().hex[:10]}"
    agent = _agent(backend_url, session_id)

    def continue_with_more_input(event: BeforeModelCallEvent) -> None:
        # What Strands' background tasks do: a user-role input that Strands merges into the prompt (same role).
        if len(event.agent.messages) == 1:
            more: list[Message] = [{"role": "user", "content": [{"text": "and more"}]}]
            _continuation.add_input(event, _continuation._ContinuationInput(args=more))

    agent.hooks.add_callback(BeforeModelCallEvent, continue_with_more_input)
    agent("first")
    live = agent.messages
    assert [m["role"] for m in live] == ["user", "assistant"]
    assert [b["text"] for b in live[0]["content"]] == ["first", "and more"]
    agent("second")

    restored = _agent(backend_url, session_id).messages
    assert [m["content"] for m in restored] == [m["content"] for m in agent.messages]
    tracking_ids = [m["tracking_id"] for m in restored]
    assert len(set(tracking_ids)) == len(tracking_ids) == 4
    history = httpx.get(f"{backend_url}/v1/sessions/{session_id}/agents/default/messages").json()
    assert [m["message_id"] for m in history] == [0, 1, 2, 3]
    assert [m["message"]["tracking_id"] for m in history] == tracking_ids


def test_issue_4420_stock_repository_session_manager_gets_one_row_per_tracking_id(backend_url: str) -> None:
    """#4420 with Strands' own `RepositorySessionManager` on our repository: the backend replaces by tracking id."""
    from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

    from test_session_agent import PostgreSQLSessionRepository

    session_id = f"i4420s-{uuid.uuid4().hex[:10]}"
    repo = PostgreSQLSessionRepository(base_url=backend_url)
    repo.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
    repo.create_agent(session_id, SessionAgent(agent_id="a", state={}, conversation_manager_state={}))
    first = {"role": "user", "content": [{"text": "first"}], "tracking_id": "t-0"}
    merged = {"role": "user", "content": [{"text": "first"}, {"text": "and more"}], "tracking_id": "t-0"}
    repo.create_message(session_id, "a", SessionMessage(message=first, message_id=0))  # type: ignore[arg-type]
    repo.create_message(session_id, "a", SessionMessage(message=merged, message_id=1))  # type: ignore[arg-type]
    stored = repo.list_messages(session_id, "a")
    assert [(m.message_id, m.message) for m in stored] == [(0, merged)]
    repo.close()


@tool(context=True)
def needs_approval(tool_context: ToolContext) -> str:
    """Ask a human before going on."""
    answer = tool_context.interrupt("approval", reason="may I?")
    return f"approved: {answer}"


def _session_ids(page: dict[str, Any]) -> list[str]:
    return [item["session_id"] for item in page["items"]]


def test_awaiting_human_and_recent_conversations_filters(backend_url: str, service: TestClient) -> None:
    """Sessions waiting for a human (pending interrupt), by metadata, and most recently continued first."""
    tag = uuid.uuid4().hex[:8]
    ids = [f"list-{tag}-{n}" for n in range(3)]
    for n, sid in enumerate(ids):
        metadata = {"tag": tag, "tier": "gold" if n == 1 else "free", "n": n}
        httpx.post(f"{backend_url}/v1/sessions", json={"session_id": sid, "metadata": metadata}).raise_for_status()
    waiting = _agent(backend_url, ids[0], tools=[needs_approval])
    result = waiting("use needs_approval {}")
    assert result.stop_reason == "interrupt" and result.interrupts
    _agent(backend_url, ids[2])("hello")
    _agent(backend_url, ids[1])("hello")  # the most recent turn

    def page(base: str, **params: Any) -> dict[str, Any]:
        response = httpx.get(f"{base}/v1/sessions", params={"metadata.tag": tag, **params})
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    assert _session_ids(page(backend_url, awaiting_input="true")) == [ids[0]]
    assert _session_ids(page(backend_url, awaiting_input="false")) == [ids[2], ids[1]]
    assert _session_ids(page(backend_url, **{"metadata.tier": "gold"})) == [ids[1]]
    assert _session_ids(page(backend_url, **{"metadata.n": "2"})) == [ids[2]]
    assert _session_ids(page(backend_url, **{"metadata.tier": "none"})) == []
    recent = page(backend_url, order_by="updated_at")
    assert _session_ids(recent) == [ids[1], ids[2], ids[0]]
    stamps = [item["updated_at"] for item in recent["items"]]
    assert stamps == sorted(stamps, reverse=True)
    # Cursor pagination by updated_at walks every session once, in order; a cursor of one order is refused by another.
    walked, cursor = [], None
    while True:
        one = page(backend_url, order_by="updated_at", limit=1, **({"cursor": cursor} if cursor else {}))
        walked += _session_ids(one)
        if (cursor := one["next_cursor"]) is None:
            break
        last_cursor = cursor
    assert walked == _session_ids(recent)
    refused = httpx.get(f"{backend_url}/v1/sessions", params={"cursor": last_cursor})
    assert refused.status_code == 422
    assert httpx.get(f"{backend_url}/v1/sessions", params={"awaiting_input": "maybe"}).status_code == 422

    # The agent service's list passes the filters through.
    listed = service.get("/sessions", params={"metadata.tag": tag, "awaiting_input": "true"})
    assert listed.status_code == 200 and _session_ids(listed.json()) == [ids[0]]
    listed = service.get("/sessions", params={"metadata.tag": tag, "order_by": "updated_at"})
    assert _session_ids(listed.json()) == [ids[1], ids[2], ids[0]]
    assert service.get("/sessions", params={"order_by": "nonsense"}).status_code == 422

    # Answering the human's question takes the session out of the waiting list.
    responses: list[InterruptResponseContent] = [
        {"interruptResponse": {"interruptId": result.interrupts[0].id, "response": "yes"}}
    ]
    waiting(responses)
    assert _session_ids(page(backend_url, awaiting_input="true")) == []
    assert _session_ids(page(backend_url, order_by="updated_at"))[0] == ids[0]


def _snapshot_agent(backend_url: str, session_id: str, prefix: str = "") -> Agent:
    return Agent(
        model=ScriptedModel(),
        agent_id="default",
        session_manager=SnapshotSessionManager(session_id, storage=PostgreSQLStorage(backend_url, prefix=prefix)),
        conversation_manager=SlidingWindowConversationManager(window_size=4),
        callback_handler=None,
    )


def test_issue_3663_message_log_converts_to_snapshot_session_and_back(backend_url: str) -> None:
    """#3663: a message-log session becomes a `SnapshotSessionManager` session (and back) that Strands restores."""
    session_id = f"i3663-{uuid.uuid4().hex[:10]}"
    logged = _agent(backend_url, session_id, conversation_manager=SlidingWindowConversationManager(window_size=4))
    for n in range(3):
        logged.state.set("turns", n + 1)
        logged(f"prompt {n}")
    assert logged.conversation_manager.removed_message_count > 0  # the window, not the whole log, is restored

    convert = f"{backend_url}/v1/sessions/{session_id}/convert"
    response = httpx.post(convert, json={"to": "snapshot", "storage_prefix": "tenant-a/"})
    assert response.status_code == 200, response.text
    assert response.json()["agents"] == [
        {
            "agent_id": "default",
            "messages": 4,
            "key": f"tenant-a/session/{session_id}/scopes/agent/default/snapshots/snapshot_latest.json",
        }
    ]
    assert httpx.post(convert, json={"to": "snapshot", "storage_prefix": "tenant-a/"}).status_code == 409

    snapshotted = _snapshot_agent(backend_url, session_id, prefix="tenant-a")
    assert snapshotted.messages == logged.messages
    assert snapshotted.state.get() == {"turns": 3}
    assert snapshotted.conversation_manager.get_state() == logged.conversation_manager.get_state()
    snapshotted.state.set("turns", 4)
    assert "prompt 3" in str(snapshotted("prompt 3"))  # the snapshot session goes on

    # And back: the snapshot session (one turn further) becomes the message log again, restored by Strands.
    assert httpx.post(convert, json={"to": "messages", "storage_prefix": "tenant-a/"}).status_code == 409
    response = httpx.post(convert, json={"to": "messages", "storage_prefix": "tenant-a/", "replace": True})
    assert response.status_code == 200, response.text
    restored = _agent(backend_url, session_id, conversation_manager=SlidingWindowConversationManager(window_size=4))
    assert restored.messages == snapshotted.messages
    assert restored.state.get() == {"turns": 4}
    history = httpx.get(f"{backend_url}/v1/sessions/{session_id}/agents/default/messages").json()
    assert [m["message_id"] for m in history] == list(range(len(snapshotted.messages)))


def test_issue_3663_snapshot_session_converts_to_a_new_message_log(backend_url: str) -> None:
    """A session only `SnapshotSessionManager` ever wrote becomes a message-log session (created by the convert)."""
    session_id = f"i3663b-{uuid.uuid4().hex[:10]}"
    snapshotted = _snapshot_agent(backend_url, session_id)
    snapshotted.state.set("k", 25)
    snapshotted("hello")
    snapshotted("again")
    response = httpx.post(f"{backend_url}/v1/sessions/{session_id}/convert", json={"to": "messages"})
    assert response.status_code == 200, response.text
    restored = _agent(backend_url, session_id)
    assert restored.messages == snapshotted.messages
    assert restored.state.get() == {"k": 25}
    assert "turn 3" in str(restored("third"))

    missing = httpx.post(f"{backend_url}/v1/sessions/nope-{session_id}/convert", json={"to": "messages"})
    assert missing.status_code == 404
    assert (
        httpx.post(f"{backend_url}/v1/sessions/nope-{session_id}/convert", json={"to": "snapshot"}).status_code == 404
    )
    assert httpx.post(f"{backend_url}/v1/sessions/{session_id}/convert", json={"to": "x"}).status_code == 422


class CountingModel(ScriptedModel):
    """The scripted model, counting its calls (a restore must make none)."""

    calls = 0

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        CountingModel.calls += 1
        return super().stream(*args, **kwargs)


def _reduced_agent(backend_url: str, session_id: str, manager: Any) -> Agent:
    return Agent(
        model=CountingModel(),
        agent_id="default",
        session_manager=PostgreSQLSessionManager(session_id, base_url=backend_url),
        conversation_manager=manager,
        callback_handler=None,
    )


def test_issue_4027_pin_first_window_restored_exactly(backend_url: str) -> None:
    """#4027: a sliding window with `pin_first` came back as the log's tail: the pinned first message was lost."""
    session_id = f"i4027-{uuid.uuid4().hex[:10]}"
    live = _reduced_agent(backend_url, session_id, SlidingWindowConversationManager(window_size=4, pin_first=1))
    for n in range(4):
        live(f"prompt {n}")
    assert live.messages[0]["content"] == [{"text": "prompt 0"}]  # pinned, kept at the head of the window
    assert len(live.messages) < 8  # reduced

    restored = _reduced_agent(backend_url, session_id, SlidingWindowConversationManager(window_size=4, pin_first=1))
    assert restored.messages == live.messages
    listed = httpx.get(f"{backend_url}/v1/sessions/{session_id}/agents/default/messages")
    assert listed.headers["context-window"] == "recorded"  # a restore asks for the window
    assert len(listed.json()) == 8  # the full log stays readable
    assert "first: prompt 0" in str(restored("prompt 4"))  # the model sees the pinned message


def test_restore_asks_for_the_context_window_only_when_one_is_recorded(
    backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message list says whether a context window is recorded (`Context-Window`): an agent whose window is the
    log's plain tail is restored in one request fewer, and the same."""
    session_id = f"nowindow-{uuid.uuid4().hex[:10]}"
    live = _reduced_agent(backend_url, session_id, SlidingWindowConversationManager(window_size=40))
    live("prompt 0")
    listed = httpx.get(f"{backend_url}/v1/sessions/{session_id}/agents/default/messages")
    assert listed.headers["context-window"] == "none"
    paths: list[str] = []
    original = PostgreSQLSessionRepository._request

    def recording(self: Any, method: str, path: str, **kwargs: Any) -> Any:
        paths.append(path)
        return original(self, method, path, **kwargs)

    monkeypatch.setattr(PostgreSQLSessionRepository, "_request", recording)
    restored = _reduced_agent(backend_url, session_id, SlidingWindowConversationManager(window_size=40))
    assert restored.messages == live.messages
    assert any(p.endswith("/messages") for p in paths)
    assert not any(p.endswith("/context-window") for p in paths)


def test_issue_4270_summarized_window_restored_without_model_call(backend_url: str) -> None:
    """#4270: a summarizing reduction (with `pin_first`) is restored as the previous process had it, no model call."""
    from strands.agent.conversation_manager import SummarizingConversationManager

    def manager() -> SummarizingConversationManager:
        return SummarizingConversationManager(summary_ratio=0.5, preserve_recent_messages=2, pin_first=2)

    session_id = f"i4270-{uuid.uuid4().hex[:10]}"
    live = _reduced_agent(backend_url, session_id, manager())
    for n in range(4):
        live(f"prompt {n}")
    live.conversation_manager.reduce_context(live)  # what Strands does on a context overflow: a model call
    live("prompt 4")  # the turn's batch records the reduced window
    assert any("summary" in str(m).lower() or m["role"] == "user" for m in live.messages[:3])
    assert len(live.messages) < 10

    calls = CountingModel.calls
    restored = _reduced_agent(backend_url, session_id, manager())
    assert CountingModel.calls == calls  # no model call to restore
    assert restored.messages == live.messages
    assert restored.conversation_manager.get_state() == live.conversation_manager.get_state()
    restored("prompt 5")
    assert CountingModel.calls == calls + 1  # the turn's own call only
    history = httpx.get(f"{backend_url}/v1/sessions/{session_id}/agents/default/messages").json()
    assert len(history) == 12
