"""`/ws/{session_id}`: a `BidiAgent` on a session over a WebSocket, text in and text out (protocol in README.md).

Client → server: `{"type": "text", "text": ...}` (one user message), `{"type": "stop"}` (end). Server → client:
`{"type": "start", session_id, conversation_length}` once restored, then per reply `{"type": "text", "data": ...}`
deltas and `{"type": "done", session_id, response, status}`; a refused message is `{"type": "error", status, detail,
session_id}` and the socket stays open; a failure is the same event, then the socket closes with code 4000 + status.

Each message is one turn: it takes the session's lease (the same lease code as an HTTP turn), the agent is restored
again when another writer changed the session since, the reply is stored and the lease released. So an idle socket
holds nothing, and messages sent back to back are queued and answered in order (stored history alternates).
Frames are capped like HTTP bodies (`AGENT_MAX_REQUEST_BYTES`, by uvicorn: close code 1009).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, WebSocket
from pydantic import TypeAdapter, ValidationError
from strands.bidi.agent import BidiAgent
from strands.bidi.types.events import BidiResponseStopEvent, BidiTextDeltaEvent, BidiTranscriptDeltaEvent
from strands.types.exceptions import SessionException

from ...agent import AGENT_ID, SessionAgents
from ...exceptions import SessionBusyError, SessionNotFoundError
from ...models.factory import build_bidi_model
from ...service.session_managers import ServiceSessionManager, build_session_manager
from ...session_manager import TurnContext
from ...turns.speculation import manager_is_current
from ..deps import Caller, actor_of, require_owned_session
from ..errors import status_of
from ..schemas import Identifier, Prompt, TurnStatus

logger = logging.getLogger(__name__)

router = APIRouter(tags=["bidi"])

_identifier: TypeAdapter[str] = TypeAdapter(Identifier)
_prompt: TypeAdapter[str] = TypeAdapter(Prompt)

QUEUED_MESSAGES = 8
"""Messages a socket may have waiting for their turn (beyond: refused with a 429 event, nothing stored)."""


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
    conversation = _Conversation(websocket, agents, session_id, actor_id, require_actor=caller is not None)
    try:
        length = await conversation.open()
        await websocket.send_json({"type": "start", "session_id": session_id, "conversation_length": length})
        await conversation.converse()
    except Exception as e:
        logger.warning("session_id=<%s> | bidi session failed", session_id, exc_info=True)
        await _fail(websocket, session_id, *status_of(e))
    finally:
        await conversation.close()


class _Conversation:
    """One socket's conversation: its BidiAgent (restored when the session changed), one turn per message."""

    def __init__(
        self, websocket: WebSocket, agents: SessionAgents, session_id: str, actor_id: str | None, require_actor: bool
    ) -> None:
        self.websocket = websocket
        self.agents = agents
        self.session_id = session_id
        self.actor_id = actor_id
        self.require_actor = require_actor
        # The socket's own lease owner: its turns and this process's HTTP turns exclude each other.
        self.owner = f"{agents.owner}:ws:{uuid.uuid4().hex[:12]}"
        self.agent: BidiAgent | None = None
        self.manager: ServiceSessionManager | None = None
        self._events: AsyncGenerator[Any, None] | None = None
        self._connected = True

    async def send(self, event: dict[str, Any]) -> None:
        """Send an event while the client is there; a turn whose client left still runs to its end (and is stored)."""
        if not self._connected:
            return
        try:
            await self.websocket.send_json(event)
        except Exception:
            self._connected = False

    async def refuse(self, status: int, detail: str) -> None:
        """A message refused before any work: an error event, the socket stays open."""
        await self.send({"type": "error", "status": status, "detail": detail, "session_id": self.session_id})

    async def converse(self) -> None:
        """Read messages and answer them one at a time, in order, until the client stops or leaves."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        turns = asyncio.create_task(self._answer(queue))
        reader = asyncio.create_task(self._read(queue))
        done, _ = await asyncio.wait((turns, reader), return_when=asyncio.FIRST_COMPLETED)
        if turns in done:  # a turn failed: nothing more is read
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            turns.result()
            return
        if not reader.result():  # the client left: the running turn ends, the waiting messages are dropped
            while not queue.empty():
                queue.get_nowait()
        queue.put_nowait(None)
        await turns
        with contextlib.suppress(Exception):
            await self.websocket.close()

    async def _read(self, queue: asyncio.Queue[str | None]) -> bool:
        """Queue each valid message, refuse the others (an event); True on `stop`, False when the client left."""
        while True:
            frame = await self.websocket.receive()
            if frame["type"] == "websocket.disconnect":
                self._connected = False
                return False
            try:
                message: Any = orjson.loads(frame.get("text") or frame.get("bytes") or b"")
            except orjson.JSONDecodeError:
                message = None
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "stop":
                return True
            text = message.get("text") if kind == "text" else None
            if not isinstance(text, str):
                await self.refuse(422, 'expected {"type": "text", "text": "..."} or {"type": "stop"}')
                continue
            try:
                _prompt.validate_python(text)
            except ValidationError as e:
                await self.refuse(422, str(e.errors()[0]["msg"]).removeprefix("Value error, "))
                continue
            if len(text) > self.agents.settings.max_prompt_chars:
                await self.refuse(422, f"text is longer than {self.agents.settings.max_prompt_chars} characters")
                continue
            if queue.qsize() >= QUEUED_MESSAGES:
                await self.refuse(429, f"{QUEUED_MESSAGES} messages are already waiting; wait for their replies")
                continue
            queue.put_nowait(text)

    async def _answer(self, queue: asyncio.Queue[str | None]) -> None:
        while (text := await queue.get()) is not None:
            sent_at = time.perf_counter()
            try:
                reply, length, current = await self.turn(text)
            except SessionBusyError as e:  # another writer outlasted SESSION_WAIT_SECONDS: this message only
                await self.refuse(*status_of(e))
                continue
            status = TurnStatus(
                conversation_length=length,
                agent_id=AGENT_ID,
                cached_agent=current,
                model_provider=self.agents.settings.model_provider,
                duration_ms=round((time.perf_counter() - sent_at) * 1000, 3),
            )
            await self.send(
                {"type": "done", "session_id": self.session_id, "response": reply, "status": status.model_dump()}
            )

    async def open(self) -> int:
        """Restore (or create) the session's agent under the lease, then release it; returns the conversation's length.

        Raises:
            as `turn`.
        """
        async with self._leased():
            assert self.agent is not None
            return len(self.agent.messages)

    async def turn(self, text: str) -> tuple[str, int, bool]:
        """One turn under the session's lease: the agent restored if it is behind, then `text` answered and stored.

        Returns:
            `(reply, conversation_length, agent_was_current)`.

        Raises:
            SessionBusyError: another writer held the lease for `SESSION_WAIT_SECONDS`.
            SessionNotFoundError: the session is another actor's (access control on).
            SessionException: the backend refused or is unreachable.
        """
        async with self._leased() as current:
            assert self.agent is not None and self.manager is not None
            self.manager.begin_turn(TurnContext(lease_owner=self.owner))
            try:
                reply = await self._reply(text)
                await self.manager.end_bidi_reply(self.agent)
            finally:
                self.manager.end_turn()
            self.agents.drop(self.session_id)  # a cached HTTP agent of this session is now behind
            return reply, len(self.agent.messages), current

    @contextlib.asynccontextmanager
    async def _leased(self) -> AsyncIterator[bool]:
        """Hold the session's lease, the agent current with the backend; yields whether it already was."""
        agents, session_id = self.agents, self.session_id
        deadline = time.monotonic() + agents.settings.session_wait_seconds
        lease = await asyncio.to_thread(agents.leases.take, session_id, deadline, None, self.owner)
        try:
            if self.require_actor and lease.get("incarnation") is not None and lease.get("actor_id") != self.actor_id:
                # Checked under the lease: the session may have been created by another actor since it was checked.
                raise SessionNotFoundError(f"session {session_id!r} not found")
            # Renewed, and released, by the same code as an HTTP turn's lease (`turns/lease.py`).
            agents.leases.renew(session_id, self.owner)
            current = self.manager is not None and manager_is_current(self.manager, session_id, lease)
            if not current:
                await self._restore()
            yield current
        finally:
            await asyncio.to_thread(agents.leases.release, session_id, self.owner)

    async def _reply(self, text: str) -> str:
        """Send `text` to the agent and pass its reply on as it comes; returns it once stored (response stop)."""
        assert self.agent is not None and self._events is not None
        await self.agent.send(text)
        deltas: list[str] = []
        async for event in self._events:
            if isinstance(event, BidiTextDeltaEvent) or (
                isinstance(event, BidiTranscriptDeltaEvent) and event.role == "assistant"
            ):
                deltas.append(event.delta)
                await self.send({"type": "text", "data": event.delta})
            elif isinstance(event, BidiResponseStopEvent):
                # Strands stores a reply's messages before it emits the response stop.
                break
        return "".join(deltas)

    async def _restore(self) -> None:
        """(Re)build the agent from the backend's state (under the lease): a first turn, or the session changed."""
        await self._stop()
        agents = self.agents
        self.manager = await asyncio.to_thread(
            build_session_manager, agents.settings, agents.client, self.session_id, self.actor_id
        )
        self.agent = await asyncio.to_thread(_build_agent, agents, self.manager)
        await self.agent.start()
        self._events = self.agent.receive()

    async def _stop(self) -> None:
        """Stop the agent (the session manager stores its state, fenced by the lease when one is held)."""
        agent, manager, events = self.agent, self.manager, self._events
        self.agent, self.manager, self._events = None, None, None
        if agent is None or manager is None:
            return
        manager.begin_turn(TurnContext(lease_owner=self.owner))
        try:
            if events is not None:
                with contextlib.suppress(Exception):
                    await events.aclose()
            with contextlib.suppress(Exception):
                await agent.stop()
        finally:
            manager.end_turn()

    async def close(self) -> None:
        """Stop the agent at the end of the connection, under the lease when it can be had in time."""
        if self.agent is None:
            return
        agents, session_id = self.agents, self.session_id
        deadline = time.monotonic() + agents.settings.session_wait_seconds
        try:
            await asyncio.to_thread(agents.leases.take, session_id, deadline, None, self.owner)
        except SessionException:
            # Stopped anyway: a write it would make is fenced by a lease it does not hold, so refused, never mixed in.
            logger.debug("session_id=<%s> | bidi agent stopped without the lease", session_id)
        try:
            await self._stop()
        finally:
            await asyncio.to_thread(agents.leases.release, session_id, self.owner)


def _build_agent(agents: SessionAgents, manager: ServiceSessionManager) -> BidiAgent:
    """Restore (or create) the session's BidiAgent (blocking: run on a worker thread)."""
    return BidiAgent(
        model=build_bidi_model(agents.settings),
        agent_id=AGENT_ID,
        system_prompt=agents.settings.system_prompt,
        session_manager=manager,
    )


async def _fail(websocket: WebSocket, session_id: str, status: int, detail: str) -> None:
    """Tell the client why, then close with code 4000 + status."""
    with contextlib.suppress(Exception):
        await websocket.send_json({"type": "error", "status": status, "detail": detail, "session_id": session_id})
        await websocket.close(code=4000 + status, reason=detail[:120])
