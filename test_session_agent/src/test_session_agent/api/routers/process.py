"""`POST /process` and `POST /process-streaming` (SSE): one agent turn on a session."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sse_starlette.sse import EventSourceResponse

from ...agent import AGENT_ID, TurnResult
from ...settings import AgentSettings
from ..deps import Agents, Settings
from ..errors import PROBLEM_RESPONSES
from ..schemas import ProcessRequest, ProcessResponse
from ..turns import SSE_RESPONSES, check_prompt, turn_status, turn_stream

router = APIRouter(tags=["process"], responses=PROBLEM_RESPONSES)


def _session_id(body: ProcessRequest, settings: AgentSettings) -> str:
    """The turn's session: the one named, else a new id. Refuses an over-long prompt before any work."""
    check_prompt(body.prompt, settings)
    return body.session_id or uuid.uuid4().hex


def _response(result: TurnResult, settings: AgentSettings) -> ProcessResponse:
    return ProcessResponse(
        session_id=result.session_id, response=result.response, status=turn_status(result, settings, AGENT_ID)
    )


@router.post("/process", response_model=ProcessResponse)
async def process(body: ProcessRequest, agents: Agents, settings: Settings) -> ProcessResponse:
    """Run one turn and answer with the reply once every message of the turn is stored."""
    session_id = _session_id(body, settings)
    result = await agents.run_turn(session_id, body.prompt, actor_id=body.actor_id)
    return _response(result, settings)


@router.post("/process-streaming", responses=SSE_RESPONSES)
async def process_streaming(body: ProcessRequest, agents: Agents, settings: Settings) -> EventSourceResponse:
    """Run one turn, streaming `{"type":"text"}` events as the model writes, then `{"type":"done"}`."""
    session_id = _session_id(body, settings)
    return turn_stream(
        session_id,
        lambda on_text: agents.run_turn(session_id, body.prompt, actor_id=body.actor_id, on_text=on_text),
        lambda result: _response(result, settings),
    )
