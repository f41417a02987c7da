"""BidiAgent sessions in PostgreSQL: both session managers write each message as it is added (transcript updates
included) off the event loop, and restore the conversation after a stop, a connection restart, a new agent, and a
real restart of the agent service's `/ws/{session_id}`."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from strands.bidi.agent import BidiAgent
from strands.bidi.types.events import BidiConnectionRestartEvent, BidiResponseStopEvent, BidiTextBlockEvent
from strands.session.session_manager import SessionManager
from strands.session.snapshot_session_manager import SnapshotSessionManager
from strands.types.agent import LocalAgent
from websockets.asyncio.client import connect

from test_session_agent import PostgreSQLSessionManager, PostgreSQLStorage
from test_session_agent.models.scripted_bidi import ScriptedBidiModel
from test_session_agent.testing import scripted_agent_env

pytestmark = pytest.mark.integration

ManagerFactory = Callable[[str, str], SessionManager[LocalAgent]]


def repository_manager(backend_url: str, session_id: str) -> SessionManager[LocalAgent]:
    return PostgreSQLSessionManager(session_id, base_url=backend_url)


def snapshot_manager(backend_url: str, session_id: str) -> SessionManager[LocalAgent]:
    return SnapshotSessionManager(session_id, storage=PostgreSQLStorage(backend_url))


MANAGERS = [pytest.param(repository_manager, id="repository"), pytest.param(snapshot_manager, id="snapshot")]


async def build(make: ManagerFactory, backend_url: str, session_id: str, model: ScriptedBidiModel) -> BidiAgent:
    """A BidiAgent restored from the backend; built on a worker thread (the restore is synchronous HTTP)."""
    manager = await asyncio.to_thread(make, backend_url, session_id)
    return await asyncio.to_thread(BidiAgent, model=model, session_manager=manager)


async def say(agent: BidiAgent, text: str) -> str:
    """Send `text` and return the reply, once the response has ended."""
    await agent.send(text)
    reply = ""
    async for event in agent.receive():
        if isinstance(event, BidiTextBlockEvent):
            reply = event.text
        if isinstance(event, BidiResponseStopEvent):
            return reply
    raise AssertionError("the connection ended before the response")


async def stored_texts(make: ManagerFactory, backend_url: str, session_id: str) -> list[tuple[str, str]]:
    """(role, text) of every message a fresh agent restores from the backend now."""
    agent = await build(make, backend_url, session_id, ScriptedBidiModel())
    return [(m["role"], "".join(b.get("text", "") for b in m["content"])) for m in agent.messages]


@pytest.mark.parametrize("make", MANAGERS)
async def test_messages_are_stored_as_added_and_restored_after_stop_restart_and_rebuild(
    make: ManagerFactory, backend_url: str
) -> None:
    sid = f"bidi-{uuid.uuid4().hex[:8]}"
    model = ScriptedBidiModel()
    agent = await build(make, backend_url, sid, model)
    await agent.start()
    assert (await say(agent, "hello, I am Ada")).startswith("turn 1; history 1 messages; first: hello, I am Ada")

    # Written while the connection is still open: the completed reply, not the pending placeholder.
    assert await stored_texts(make, backend_url, sid) == [
        ("user", "hello, I am Ada"),
        ("assistant", "turn 1; history 1 messages; first: hello, I am Ada | you said: hello, I am Ada"),
    ]

    # The provider times the connection out: the agent reconnects, replaying its history.
    model.drop_connection()
    async for event in agent.receive():
        if isinstance(event, BidiConnectionRestartEvent):
            break
    reply = await say(agent, "still there?")
    assert model.starts == 2 and reply.startswith("turn 2; history 3 messages; first: hello, I am Ada")

    await agent.stop()
    await agent.start()
    assert (await say(agent, "after stop")).startswith("turn 3; history 5 messages; first: hello, I am Ada")
    await agent.stop()

    # A new agent (as after a process restart) restores the conversation from PostgreSQL.
    rebuilt = await build(make, backend_url, sid, ScriptedBidiModel())
    assert len(rebuilt.messages) == 6
    async with rebuilt:
        assert (await say(rebuilt, "new agent")).startswith("turn 4; history 7 messages; first: hello, I am Ada")
    assert len(await stored_texts(make, backend_url, sid)) == 8


async def test_repository_manager_writes_off_the_event_loop_one_request_per_message(backend_url: str) -> None:
    sid = f"bidi-{uuid.uuid4().hex[:8]}"
    manager = await asyncio.to_thread(PostgreSQLSessionManager, sid, base_url=backend_url)
    threads: list[threading.Thread] = []
    apply_batch = manager.apply_batch

    def recording(*args: Any, **kwargs: Any) -> dict[str, Any]:
        threads.append(threading.current_thread())
        return apply_batch(*args, **kwargs)

    manager.apply_batch = recording  # type: ignore[method-assign]
    agent = await asyncio.to_thread(BidiAgent, model=ScriptedBidiModel(), session_manager=manager)
    async with agent:
        await say(agent, "one")
    # user message, assistant placeholder, its completed transcript, the stop's state sync (unchanged: no request)
    assert len(threads) == 3
    assert threading.main_thread() not in threads


async def test_transcript_output_is_stored_completed(backend_url: str) -> None:
    sid = f"bidi-{uuid.uuid4().hex[:8]}"
    model = ScriptedBidiModel(output="transcript")
    agent = await build(repository_manager, backend_url, sid, model)
    async with agent:
        await agent.send("hi")
        async for event in agent.receive():
            if isinstance(event, BidiResponseStopEvent):
                break
    texts = await stored_texts(repository_manager, backend_url, sid)
    assert texts[1][0] == "assistant" and texts[1][1].startswith("turn 1;")


async def ws_turn(url: str, text: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """Connect to `/ws/...`, send `text`, return the start event, the streamed reply and the done event."""
    async with connect(url) as ws:
        start = orjson.loads(await ws.recv())
        await ws.send(orjson.dumps({"type": "text", "text": text}).decode())
        deltas = []
        while (event := orjson.loads(await ws.recv()))["type"] == "text":
            deltas.append(event["data"])
        return start, "".join(deltas), event


@pytest.mark.parametrize("manager", ["repository", "snapshot"])
def test_ws_restores_the_conversation_across_a_real_service_restart(
    manager: str, backend_url: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    port = port_factory()
    env, url = scripted_agent_env(backend_url, port, SESSION_MANAGER=manager)
    sid = f"ws-{manager}-{uuid.uuid4().hex[:8]}"
    ws_url = f"ws://127.0.0.1:{port}/ws/{sid}"
    with service_runner("test-session-agent", env, url, log=tmp_path / "agent.log"):
        start, reply, done = asyncio.run(ws_turn(ws_url, "Hello, my name is Alice"))
        assert start == {"type": "start", "session_id": sid, "conversation_length": 0}
        assert reply == done["response"] and reply.startswith("turn 1;")
        assert done["type"] == "done" and done["session_id"] == sid and done["status"]["conversation_length"] == 2
    with service_runner("test-session-agent", env, url, log=tmp_path / "agent.log"):
        start, reply, done = asyncio.run(ws_turn(ws_url, "What is my name?"))
        assert start["conversation_length"] == 2
        assert reply.startswith("turn 2; history 3 messages; first: Hello, my name is Alice")
        history = httpx.get(f"{url}/sessions/{sid}/history").json()["messages"]
        assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
        # /process continues the same conversation
        r = httpx.post(f"{url}/process", json={"prompt": "and now?", "session_id": sid}, timeout=30)
        assert r.status_code == 200 and "first: Hello, my name is Alice" in r.json()["response"]
