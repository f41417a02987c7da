"""`POST /process` and `POST /process-streaming` (SSE): one agent turn on a session."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sse_starlette.sse import EventSourceResponse

from ...agent import AGENT_ID, TurnResult
from ...settings import AgentSettings
from ..deps import Agents, Caller, CallerIdentity, IdempotencyKey, Settings, actor_of, require_owned_session
from ..errors import PROBLEM_RESPONSES
from ..schemas import ProcessRequest, ProcessResponse
from ..turns import SSE_RESPONSES, check_prompt, turn_status, turn_stream

router = APIRouter(tags=["process"], responses=PROBLEM_RESPONSES)


async def _turn_target(
    body: ProcessRequest, settings: AgentSettings, agents: Agents, caller: CallerIdentity | None
) -> tuple[str, str | None]:
    """The turn's session (the one named, else a new id) and actor; refuses bad turns before any work.

    Refused: an over-long prompt (422), another actor's session (404, as if absent), another actor's identity (403).
    """
    check_prompt(body.prompt, settings)
    actor_id = actor_of(caller, body.actor_id)
    if body.session_id is None:
        return uuid.uuid4().hex, actor_id
    await require_owned_session(agents, body.session_id, caller, must_exist=False)
    return body.session_id, actor_id


def _response(result: TurnResult, settings: AgentSettings) -> ProcessResponse:
    return ProcessResponse(
        session_id=result.session_id, response=result.response, status=turn_status(result, settings, AGENT_ID)
    )


@router.post("/process", response_model=ProcessResponse)
async def process(
    body: ProcessRequest, agents: Agents, settings: Settings, caller: Caller, idempotency_key: IdempotencyKey = None
) -> ProcessResponse:
    """Run one turn and answer with the reply once every message of the turn is stored.

    With an `Idempotency-Key`, a retry of a turn already stored in the session returns its answer and stores nothing.
    """
    session_id, actor_id = await _turn_target(body, settings, agents, caller)
    result = await agents.run_turn(session_id, body.prompt, actor_id=actor_id, idempotency_key=idempotency_key)
    return _response(result, settings)


@router.post("/process-streaming", responses=SSE_RESPONSES)
async def process_streaming(
    body: ProcessRequest, agents: Agents, settings: Settings, caller: Caller, idempotency_key: IdempotencyKey = None
) -> EventSourceResponse:
    """Run one turn, streaming `{"type":"text"}` events as the model writes, then `{"type":"done"}`.

    With an `Idempotency-Key` of a turn already stored, the stored answer comes as the `done` event, without text.
    """
    session_id, actor_id = await _turn_target(body, settings, agents, caller)
    return turn_stream(
        session_id,
        lambda on_text: agents.run_turn(
            session_id, body.prompt, actor_id=actor_id, on_text=on_text, idempotency_key=idempotency_key
        ),
        lambda result: _response(result, settings),
    )
