"""`POST /process` and `POST /process-streaming` (SSE): one agent turn on a session."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, HTTPException
from sse_starlette.sse import EventSourceResponse

from ...agent import AGENT_ID, TurnResult
from ...settings import AgentSettings
from ..deps import Agents, IdempotencyKey, Settings
from ..errors import PROBLEM_RESPONSES, status_of
from ..schemas import ProcessRequest, ProcessResponse, TurnStatus

router = APIRouter(tags=["process"], responses=PROBLEM_RESPONSES)


def _session_id(body: ProcessRequest, settings: AgentSettings) -> str:
    """The turn's session: the one named, else a new id. Refuses an over-long prompt before any work."""
    if len(body.prompt) > settings.max_prompt_chars:
        raise HTTPException(422, f"prompt is longer than {settings.max_prompt_chars} characters")
    return body.session_id or uuid.uuid4().hex


def _response(result: TurnResult, settings: AgentSettings) -> ProcessResponse:
    return ProcessResponse(
        session_id=result.session_id,
        response=result.response,
        status=TurnStatus(
            conversation_length=result.conversation_length,
            agent_id=AGENT_ID,
            cached_agent=result.cached,
            model_provider=settings.model_provider,
            duration_ms=round(result.duration_ms, 3),
            usage=result.usage,
            replayed=result.replayed,
        ),
    )


@router.post("/process", response_model=ProcessResponse)
async def process(
    body: ProcessRequest, agents: Agents, settings: Settings, idempotency_key: IdempotencyKey = None
) -> ProcessResponse:
    """Run one turn and answer with the reply once every message of the turn is stored.

    With an `Idempotency-Key`, a retry of a turn already stored in the session returns its answer and stores nothing.
    """
    session_id = _session_id(body, settings)
    result = await agents.run_turn(session_id, body.prompt, actor_id=body.actor_id, idempotency_key=idempotency_key)
    return _response(result, settings)


@router.post(
    "/process-streaming",
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE: text..., then done or error"}},
)
async def process_streaming(
    body: ProcessRequest, agents: Agents, settings: Settings, idempotency_key: IdempotencyKey = None
) -> EventSourceResponse:
    """Run one turn, streaming `{"type":"text"}` events as the model writes, then `{"type":"done"}`.

    With an `Idempotency-Key` of a turn already stored, the stored answer comes as the `done` event, without text.
    """
    session_id = _session_id(body, settings)

    async def events() -> AsyncIterator[dict[str, str]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def on_text(text: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, text)

        turn = asyncio.ensure_future(
            agents.run_turn(
                session_id, body.prompt, actor_id=body.actor_id, on_text=on_text, idempotency_key=idempotency_key
            )
        )
        turn.add_done_callback(lambda _: queue.put_nowait(None))
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
        done = {"type": "done"} | _response(result, settings).model_dump()
        yield {"data": orjson.dumps(done).decode()}

    return EventSourceResponse(events(), ping=15)
