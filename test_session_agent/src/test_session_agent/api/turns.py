"""What the turn routes share (`/process*`, `/api/v1/agents/{agent_id}/invoke*`): prompt check, status, SSE answer.

SSE events (`data:` JSON): `{"type":"start","session_id"}`, `{"type":"text","data"}` per text delta, then
`{"type":"done", ...the route's JSON response}` or `{"type":"error","status","detail","session_id"}`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import orjson
from fastapi import HTTPException
from pydantic import BaseModel
from sse_starlette.sse import EventSourceResponse

from ..settings import AgentSettings
from ..turns.request import ModelStartCallback, TextCallback, TurnResult
from .errors import status_of
from .schemas import TurnStatus

SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "SSE: start, text..., then done or error"}
}
"""OpenAPI `responses=` of a streaming route."""


HEADERS_WAIT_SECONDS = 0.05
"""How long a streamed turn's response headers wait for its model to start (see `turn_stream`)."""

DEGRADED_HEADER = "X-Session-Degraded"
"""Response header of a turn answered without a session (`stateless`): the backend was down."""


def check_prompt(prompt: str, settings: AgentSettings) -> None:
    """Refuse an over-long prompt (422) before any work."""
    if len(prompt) > settings.max_prompt_chars:
        raise HTTPException(422, f"prompt is longer than {settings.max_prompt_chars} characters")


def turn_status(result: TurnResult, settings: AgentSettings) -> TurnStatus:
    """The `status` of a turn's response (`agent_id`: the agent profile that answered, e.g. the active agent)."""
    return TurnStatus(
        conversation_length=result.conversation_length,
        agent_id=result.agent_id,
        session_managed=result.session_managed,
        cached_agent=result.cached,
        model_provider=settings.model_provider,
        duration_ms=round(result.duration_ms, 3),
        usage=result.usage,
        replayed=result.replayed,
        injected_memory=result.injected_memory,
        stop_reason=result.stop_reason,
    )


async def turn_stream(
    session_id: str,
    run_turn: Callable[[TextCallback, ModelStartCallback], Awaitable[TurnResult]],
    done: Callable[[TurnResult], BaseModel],
    headers: Mapping[str, str] | None = None,
) -> EventSourceResponse:
    """Stream one turn as SSE.

    Args:
        session_id: the turn's session (sent first, so a client knows it before the reply).
        run_turn: starts the turn, given the callbacks that receive each text delta and each model start (from a
            worker thread).
        done: the route's JSON response for the finished turn, sent as the `done` event.
        headers: extra response headers (sent before the turn runs).

    Returns:
        The response, once the turn's model has started, the turn has ended, or `HEADERS_WAIT_SECONDS` have passed,
        whichever comes first: the response's own work (headers, the stream's tasks) then runs while the model
        works, instead of competing for the GIL with the turn's work up to the model call, which is on the way to
        the first text event. The turn runs to its end even when the client leaves (turns are shielded from
        cancellation).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def on_text(text: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, text)

    def finished(task: asyncio.Future[TurnResult]) -> None:
        if not task.cancelled():
            task.exception()  # marked retrieved: the stream reports it, unless the client has left
        queue.put_nowait(None)

    model_started = asyncio.Event()

    def on_model_start() -> None:
        loop.call_soon_threadsafe(model_started.set)

    turn = asyncio.ensure_future(run_turn(on_text, on_model_start))
    turn.add_done_callback(finished)
    waiter = asyncio.ensure_future(model_started.wait())
    try:
        await asyncio.wait((turn, waiter), timeout=HEADERS_WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()

    async def events() -> AsyncIterator[dict[str, str]]:
        yield {"data": orjson.dumps({"type": "start", "session_id": session_id}).decode()}
        while (text := await queue.get()) is not None:
            yield {"data": orjson.dumps({"type": "text", "data": text}).decode()}
        try:
            result = turn.result()
        except Exception as e:
            status, detail = status_of(e)
            error = {"type": "error", "status": status, "detail": detail, "session_id": session_id}
            yield {"data": orjson.dumps(error).decode()}
            return
        yield {"data": orjson.dumps({"type": "done"} | done(result).model_dump()).decode()}

    return EventSourceResponse(events(), ping=15, headers=headers)
