"""`/ws/{session_id}`: a `BidiAgent` on a session over a WebSocket, text in and text out (protocol in README.md).

Client → server: `{"type": "text", "text": ...}` (one user message), `{"type": "stop"}` (end). Server → client:
`{"type": "start", session_id, conversation_length}` once restored, then per reply `{"type": "text", "data": ...}`
deltas and `{"type": "done", session_id, response, status}`; a failure is `{"type": "error", status, detail,
session_id}` and the socket closes with code 4000 + status. The connection holds the session's lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from typing import Any

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from pydantic import TypeAdapter, ValidationError
from strands.bidi.agent import BidiAgent
from strands.bidi.types.events import BidiResponseStopEvent, BidiTextDeltaEvent, BidiTranscriptDeltaEvent
from strands.types.exceptions import SessionException

from ...agent import AGENT_ID, SessionAgents
from ...exceptions import SessionNotFoundError, TurnRefusedError
from ...models.factory import build_bidi_model
from ...service.admission import Ticket
from ...service.session_managers import ServiceSessionManager, build_session_manager
from ...session_manager import TurnContext
from ..deps import Caller, actor_of, require_owned_session
from ..errors import status_of
from ..schemas import Identifier, TurnStatus

logger = logging.getLogger(__name__)

router = APIRouter(tags=["bidi"])

_identifier: TypeAdapter[str] = TypeAdapter(Identifier)


@router.websocket("/ws/{session_id}")
async def bidi_session(websocket: WebSocket, session_id: str, caller: Caller) -> None:
    """Run a `BidiAgent` on the session for as long as the socket is open; every message is stored as it comes."""
    agents: SessionAgents = websocket.app.state.agents
    await websocket.accept()
    actor_id = websocket.query_params.get("actor_id")
    try:
        _identifier.validate_python(session_id)
        if actor_id is not None:
            _identifier.validate_python(actor_id)
    except ValidationError:
        await _fail(websocket, session_id, 422, "session_id and actor_id must be identifiers")
        return
    try:
        actor_id = actor_of(caller, actor_id)
        await require_owned_session(agents, session_id, caller, must_exist=False)
    except HTTPException as e:
        await _fail(websocket, session_id, e.status_code, str(e.detail))
        return
    except SessionException as e:
        await _fail(websocket, session_id, *status_of(e))
        return
    owner = f"{agents.owner}:ws:{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + agents.settings.session_wait_seconds
    try:
        lease = await asyncio.to_thread(agents.leases.take, session_id, deadline, None, owner)
        if caller is not None and lease.get("incarnation") is not None and lease.get("actor_id") != actor_id:
            # Checked under the lease: the session may have been created by another actor since the check above.
            await asyncio.to_thread(agents.leases.release, session_id, owner)
            raise SessionNotFoundError(f"session {session_id!r} not found")
    except SessionException as e:
        await _fail(websocket, session_id, *status_of(e))
        return
    # Renewed, and released, by the same code as a turn's lease (`turns/lease.py`).
    agents.leases.renew(session_id, owner)
    agent: BidiAgent | None = None
    manager: ServiceSessionManager | None = None
    try:
        manager = await asyncio.to_thread(build_session_manager, agents.settings, agents.client, session_id, actor_id)
        # The connection is one long turn for the session manager: every write is fenced by this lease.
        manager.begin_turn(TurnContext(lease_owner=owner))
        agent = await asyncio.to_thread(_build_agent, agents, manager)
        await agent.start()
        await websocket.send_json(
            {"type": "start", "session_id": session_id, "conversation_length": len(agent.messages)}
        )
        await _converse(websocket, agent, agents, session_id, actor_id)
    except Exception as e:
        logger.warning("session_id=<%s> | bidi session failed", session_id, exc_info=True)
        await _fail(websocket, session_id, *status_of(e))
    finally:
        if agent is not None:
            with contextlib.suppress(Exception):
                await agent.stop()  # the session managers store the agent here, under the lease
        if manager is not None:
            manager.end_turn()
        await asyncio.to_thread(agents.leases.release, session_id, owner)
        agents.drop(session_id)  # a cached /process agent of this session is now behind


def _build_agent(agents: SessionAgents, manager: ServiceSessionManager) -> BidiAgent:
    """Restore (or create) the session's BidiAgent (blocking: run on a worker thread)."""
    return BidiAgent(
        model=build_bidi_model(agents.settings),
        agent_id=AGENT_ID,
        system_prompt=agents.settings.system_prompt,
        session_manager=manager,
    )


async def _converse(
    websocket: WebSocket, agent: BidiAgent, agents: SessionAgents, session_id: str, actor_id: str | None
) -> None:
    """Pump client text into the agent and the agent's replies out, until either side ends.

    Each message is a turn for admission (`Admission`): refused at once with an `error` event (503 or 429, with
    `retry_after` seconds; the socket stays open), else it waits its turn and holds its place until its reply's end.
    """
    sent_at = time.perf_counter()
    admitted: deque[Ticket] = deque()

    async def inbound() -> None:
        nonlocal sent_at
        while True:
            try:
                message: Any = await websocket.receive_json()
            except (WebSocketDisconnect, ValueError):
                return
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "stop":
                return
            text = message.get("text") if kind == "text" else None
            if not isinstance(text, str) or not text.strip():
                detail = 'expected {"type": "text", "text": "..."} or {"type": "stop"}'
                await websocket.send_json({"type": "error", "status": 422, "detail": detail, "session_id": session_id})
                continue
            if len(text) > agents.settings.max_prompt_chars:
                detail = f"text is longer than {agents.settings.max_prompt_chars} characters"
                await websocket.send_json({"type": "error", "status": 422, "detail": detail, "session_id": session_id})
                continue
            try:
                ticket = agents.admission.admit(actor_id)
            except TurnRefusedError as e:
                refusal = {"type": "error", "status": e.status, "detail": str(e), "session_id": session_id}
                await websocket.send_json(refusal | {"retry_after": e.retry_after})
                continue
            admitted.append(ticket)
            await agents.admission.wait(ticket)
            sent_at = time.perf_counter()
            await agent.send(text)

    async def outbound() -> None:
        deltas: list[str] = []
        async for event in agent.receive():
            if isinstance(event, BidiTextDeltaEvent) or (
                isinstance(event, BidiTranscriptDeltaEvent) and event.role == "assistant"
            ):
                deltas.append(event.delta)
                await websocket.send_json({"type": "text", "data": event.delta})
            elif isinstance(event, BidiResponseStopEvent):
                status = TurnStatus(
                    conversation_length=len(agent.messages),
                    agent_id=AGENT_ID,
                    cached_agent=False,
                    model_provider=agents.settings.model_provider,
                    duration_ms=round((time.perf_counter() - sent_at) * 1000, 3),
                )
                done = {"type": "done", "session_id": session_id, "response": "".join(deltas)}
                await websocket.send_json(done | {"status": status.model_dump()})
                deltas = []
                if admitted:
                    agents.admission.release(admitted.popleft())

    tasks = [asyncio.create_task(inbound()), asyncio.create_task(outbound())]
    try:
        finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ticket in admitted:
            agents.admission.release(ticket)
    for task in finished:
        task.result()  # a failure of the agent or the socket surfaces here
    with contextlib.suppress(Exception):
        await websocket.close()


async def _fail(websocket: WebSocket, session_id: str, status: int, detail: str) -> None:
    """Tell the client why, then close with code 4000 + status."""
    with contextlib.suppress(Exception):
        await websocket.send_json({"type": "error", "status": status, "detail": detail, "session_id": session_id})
        await websocket.close(code=4000 + status, reason=detail[:120])
