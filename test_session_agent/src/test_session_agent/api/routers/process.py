"""`POST /process` and `POST /process-streaming` (SSE): one agent turn on a session."""

from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter, Response
from sse_starlette.sse import EventSourceResponse

from service_kit.jsonbody import StrictJSONRoute

from ...agent import SessionAgents
from ...observability import log_context
from ...settings import AgentSettings
from ...turns.request import ModelStartCallback, TextCallback, TurnRequest, TurnResult
from ..deps import (
    Agents,
    Caller,
    CallerIdentity,
    DeviceId,
    IdempotencyKey,
    Settings,
    require_owned_session,
)
from ..errors import PROBLEM_RESPONSES
from ..schemas import ProcessRequest, ProcessResponse
from ..turns import DEGRADED_HEADER, SSE_RESPONSES, check_prompt, turn_actor, turn_status, turn_stream

_NEW_SESSION_NAMESPACE = uuid.UUID("5f0b6c1e-2b7a-4f43-9d0e-6a1f3c2d9e10")

router = APIRouter(tags=["process"], responses=PROBLEM_RESPONSES, route_class=StrictJSONRoute)


async def _turn_session(
    body: ProcessRequest,
    agents: SessionAgents,
    caller: CallerIdentity | None,
    device_id: uuid.UUID | None,
    actor_id: str | None,
    idempotency_key: str | None = None,
) -> str:
    """The turn's session (its actor is `turn_actor`'s, and the turn already admitted).

    Without a device: the session named, else a new id (derived from the Idempotency-Key when there is one). With
    `X-Device-ID` without a session_id, the device's current live session goes on (a new one when it has none); the
    turn's lease refuses another actor's session.

    Refused: another actor's session (404, as if absent).
    """
    if device_id is None:
        if body.session_id is None:
            # With an Idempotency-Key the new session's id follows from it, so a retry of a first turn whose answer
            # was lost finds that turn (and its answer) instead of starting a second session.
            if idempotency_key is not None:
                return uuid.uuid5(_NEW_SESSION_NAMESPACE, f"{actor_id}\x00{idempotency_key}").hex
            return uuid.uuid4().hex
        await require_owned_session(agents, body.session_id, caller, must_exist=False)
        return body.session_id
    if body.session_id is None:
        return await asyncio.to_thread(agents.device_session, str(device_id))
    return body.session_id


def _response(result: TurnResult, settings: AgentSettings) -> ProcessResponse:
    return ProcessResponse(session_id=result.session_id, response=result.response, status=turn_status(result, settings))


@router.post("/process", response_model=ProcessResponse)
async def process(
    body: ProcessRequest,
    agents: Agents,
    settings: Settings,
    caller: Caller,
    response: Response,
    idempotency_key: IdempotencyKey = None,
    device_id: DeviceId = None,
) -> ProcessResponse:
    """Run one turn and answer with the reply once every message of the turn is stored.

    With an `Idempotency-Key`, a retry of a turn already stored in the session returns its answer and stores nothing.
    With `X-Device-ID`, another device's session is 404. A turn answered without a session (backend down,
    `SESSION_FALLBACK=stateless`) has `status.session_managed: false` and `X-Session-Degraded: stateless`.
    """
    check_prompt(body.prompt, settings)
    actor_id = turn_actor(body.actor_id, settings, caller, device_id)
    async with agents.admission.admitted(actor_id) as ticket:
        session_id = await _turn_session(body, agents, caller, device_id, actor_id, idempotency_key)
        with log_context(session_id=session_id, actor_id=actor_id, device_id=actor_id if device_id else None):
            result = await agents.run_turn(
                TurnRequest(
                    session_id,
                    body.prompt,
                    actor_id=actor_id,
                    idempotency_key=idempotency_key,
                    require_actor=device_id is not None or caller is not None,
                ),
                ticket,
            )
    if not result.session_managed:
        response.headers[DEGRADED_HEADER] = "stateless"
    return _response(result, settings)


@router.post("/process-streaming", responses=SSE_RESPONSES)
async def process_streaming(
    body: ProcessRequest,
    agents: Agents,
    settings: Settings,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
    device_id: DeviceId = None,
) -> EventSourceResponse:
    """Run one turn, streaming `{"type":"text"}` events as the model writes, then `{"type":"done"}`.

    With an `Idempotency-Key` of a turn already stored, the stored answer comes as the `done` event, without text.
    `X-Device-ID` as in `/process`. A stateless answer says so in `done` (`status.session_managed: false`); the
    `X-Session-Degraded` header is set when the service already knew the backend was down as the stream began.
    """
    return await stream_turn(body, agents, settings, caller, idempotency_key, device_id)


async def stream_turn(
    body: ProcessRequest,
    agents: SessionAgents,
    settings: AgentSettings,
    caller: CallerIdentity | None,
    idempotency_key: str | None = None,
    device_id: uuid.UUID | None = None,
) -> EventSourceResponse:
    """The streamed answer of `POST /process-streaming`.

    Raises:
        HTTPException: the turn is refused before any work: an over-long prompt (422), another actor's identity
            (403), a body `actor_id` other than the device (422); another actor's session (404).
        TurnRefusedError: not admitted (503, 429).
        SessionException: the session's ownership could not be checked (backend unreachable).
    """
    check_prompt(body.prompt, settings)
    actor_id = turn_actor(body.actor_id, settings, caller, device_id)
    async with agents.admission.admitted(actor_id) as ticket:
        session_id = await _turn_session(body, agents, caller, device_id, actor_id, idempotency_key)

        def start(on_text: TextCallback, on_model_start: ModelStartCallback) -> asyncio.Task[TurnResult]:
            # The turn's task is created in the request's log context (session, actor and device ids on its lines).
            with log_context(session_id=session_id, actor_id=actor_id, device_id=actor_id if device_id else None):
                return asyncio.ensure_future(
                    agents.run_turn(
                        TurnRequest(
                            session_id,
                            body.prompt,
                            actor_id=actor_id,
                            idempotency_key=idempotency_key,
                            require_actor=device_id is not None or caller is not None,
                            on_text=on_text,
                            on_model_start=on_model_start,
                        ),
                        ticket,
                    )
                )

        return await turn_stream(
            session_id,
            start,
            lambda result: _response(result, settings),
            headers={DEGRADED_HEADER: "stateless"} if agents.degraded() else None,
        )
