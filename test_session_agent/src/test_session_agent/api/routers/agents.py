"""`/api/v1`: agent profiles (CRUD and bundled examples), sessions of a profile, and turns through a profile."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response
from sse_starlette.sse import EventSourceResponse

from service_kit.jsonbody import StrictJSONRoute

from ...exceptions import SessionNotFoundOrExpiredError
from ...profiles import AgentProfile
from ...service.invocations import ProfileTurn, latest_session_of
from ...service.profile_examples import EXAMPLES
from ...settings import AgentSettings
from ...turns.request import TurnRequest, TurnResult
from ..deps import (
    Agents,
    Caller,
    CallerIdentity,
    DeviceId,
    IdempotencyKey,
    ProfileSessionsDep,
    Settings,
    actor_of,
    profile_viewer,
    require_owned_session,
)
from ..errors import PROBLEM_RESPONSES
from ..schemas import IDENTIFIER_PATTERN, Identifier
from ..schemas_v1 import (
    AgentProfileBody,
    AgentProfilePage,
    AgentProfilePublic,
    InvokeRequest,
    InvokeResponse,
    SessionCreated,
)
from ..turns import DEGRADED_HEADER, SSE_RESPONSES, check_prompt, turn_actor, turn_status, turn_stream

router = APIRouter(prefix="/api/v1", tags=["agents"], responses=PROBLEM_RESPONSES, route_class=StrictJSONRoute)

AgentId = Annotated[Identifier, Path()]


def _public(profile: AgentProfile) -> AgentProfilePublic:
    return AgentProfilePublic.model_validate(profile.to_dict())


def _owner(caller: CallerIdentity | None) -> str | None:
    # A profile belongs to the actor whose key created it; without access control it is nobody's.
    return caller.actor_id if caller is not None else None


async def _changeable(sessions: ProfileSessionsDep, agent_id: str, caller: CallerIdentity | None) -> None:
    """Refuse a change of a profile the caller does not own (404 when it may not even see it, else 403).

    Its owner, an admin key, or anyone without access control may change it; an ownerless profile only the latter two.
    """
    profile = await asyncio.to_thread(sessions.profile, agent_id, profile_viewer(caller))
    if caller is not None and not caller.admin and profile.owner_actor_id != caller.actor_id:
        raise HTTPException(403, f"agent {agent_id!r} belongs to another actor: only its owner may change it")


def _within_cap(body: AgentProfileBody, settings: AgentSettings) -> AgentProfileBody:
    """`body`, once its `max_tokens` is found within the deployment's cap (`MODEL_MAX_TOKENS_CAP`); else 422."""
    max_tokens = body.model_settings.max_tokens
    if max_tokens is not None and max_tokens > settings.max_tokens_cap:
        raise HTTPException(422, f"model_config.max_tokens may be at most {settings.max_tokens_cap} on this service")
    return body


@router.post("/agents", status_code=201, response_model=AgentProfilePublic)
async def create_agent(
    body: AgentProfileBody, sessions: ProfileSessionsDep, caller: Caller, settings: Settings
) -> AgentProfilePublic:
    """Store a new agent profile owned by the caller (unknown tools or providers, or `max_tokens` over the cap: 422)."""
    arguments = _within_cap(body, settings).client_arguments()
    profile = await asyncio.to_thread(sessions.profiles.create, **arguments, owner_actor_id=_owner(caller))
    return _public(profile)


@router.get("/agents", response_model=AgentProfilePage)
async def list_agents(
    sessions: ProfileSessionsDep,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> AgentProfilePage:
    """One page of the agent profiles the caller may use (own, shared, ownerless), ordered by agent_id."""
    page = await asyncio.to_thread(
        sessions.profiles.list_profiles, limit=limit, cursor=cursor, visible_to=profile_viewer(caller)
    )
    return AgentProfilePage(items=[_public(p) for p in page.items], next_cursor=page.next_cursor)


@router.post("/agents/examples/{example}", status_code=201, response_model=AgentProfilePublic)
async def create_example_agent(
    example: Annotated[str, Path(pattern=IDENTIFIER_PATTERN)],
    sessions: ProfileSessionsDep,
    caller: Caller,
    settings: Settings,
) -> AgentProfilePublic:
    """Store a new agent profile copied from a bundled example (`customer_support`, `math_tutor`), the caller's."""
    if example not in EXAMPLES:
        raise HTTPException(404, f"example {example!r} not found; examples: {', '.join(sorted(EXAMPLES))}")
    body = _within_cap(AgentProfileBody.model_validate(EXAMPLES[example]), settings)
    profile = await asyncio.to_thread(
        sessions.profiles.create, **body.client_arguments(), owner_actor_id=_owner(caller)
    )
    return _public(profile)


@router.get("/agents/{agent_id}", response_model=AgentProfilePublic)
async def get_agent(agent_id: AgentId, sessions: ProfileSessionsDep, caller: Caller) -> AgentProfilePublic:
    """The stored agent profile (another actor's unshared profile is 404, as if absent)."""
    return _public(await asyncio.to_thread(sessions.profile, agent_id, profile_viewer(caller)))


@router.put("/agents/{agent_id}", response_model=AgentProfilePublic)
async def update_agent(
    agent_id: AgentId, body: AgentProfileBody, sessions: ProfileSessionsDep, caller: Caller, settings: Settings
) -> AgentProfilePublic:
    """Replace an agent profile (fields left out are reset); the profile's sessions use it from their next turn.

    Only its owner (or an admin key) may: another actor gets 403 for a shared profile, 404 for an unshared one;
    `max_tokens` above the deployment's cap is 422.
    """
    await _changeable(sessions, agent_id, caller)
    arguments = _within_cap(body, settings).client_arguments()
    profile = await asyncio.to_thread(sessions.profiles.update, agent_id, **arguments)
    if profile is None:
        raise HTTPException(404, f"agent {agent_id!r} not found")
    return _public(profile)


@router.delete("/agents/{agent_id}", status_code=204)
async def delete_agent(agent_id: AgentId, sessions: ProfileSessionsDep, caller: Caller) -> Response:
    """Delete an agent profile (its sessions stay, and cannot be invoked through another profile); owner as PUT."""
    await _changeable(sessions, agent_id, caller)
    if not await asyncio.to_thread(sessions.profiles.delete, agent_id):
        raise HTTPException(404, f"agent {agent_id!r} not found")
    return Response(status_code=204)


@router.post("/sessions", status_code=201, response_model=SessionCreated)
async def create_session(
    agent_id: Annotated[Identifier, Query()],
    sessions: ProfileSessionsDep,
    caller: Caller,
    actor_id: Annotated[Identifier | None, Query()] = None,
) -> SessionCreated:
    """Start a session of an agent profile; it expires `SESSION_DEFAULT_TTL_SECONDS` later (0: never)."""
    record = await asyncio.to_thread(
        sessions.create_session, agent_id, actor_of(caller, actor_id), profile_viewer(caller)
    )
    return SessionCreated(
        session_id=record["session_id"],
        agent_id=agent_id,
        actor_id=record.get("actor_id"),
        expires_at=record.get("expires_at"),
    )


def _invoke_response(turn: ProfileTurn, result: TurnResult, settings: AgentSettings) -> InvokeResponse:
    return InvokeResponse(
        session_id=result.session_id,
        agent_id=turn.profile.agent_id,
        response=result.response,
        status=turn_status(result, settings),
    )


async def _prepare(
    agent_id: str,
    body: InvokeRequest,
    agents: Agents,
    sessions: ProfileSessionsDep,
    caller: CallerIdentity | None,
    device_id: uuid.UUID | None,
    actor_id: str | None,
) -> ProfileTurn:
    """The turn's profile and session; refuses bad turns (404, 409) before any work.

    Its actor is `turn_actor`'s, and the turn is already admitted.
    With `X-Device-ID` the device is the actor and, without a `session_id`, its newest live session of this profile
    goes on (a new one when it has none), whatever profiles it used in between; another device's session is 404
    exactly as an absent one, whichever profile is asked (the lease checks it again).
    """
    viewer = profile_viewer(caller)
    if device_id is not None:
        device = str(device_id)
        if body.session_id is None:
            latest = await asyncio.to_thread(lambda: latest_session_of(agents.backend.live_sessions(device), agent_id))
            if latest is not None:
                with contextlib.suppress(SessionNotFoundOrExpiredError):  # expired since it was listed
                    return await asyncio.to_thread(
                        sessions.prepare_turn, agent_id, latest, device, viewer, require_actor=True
                    )
        return await asyncio.to_thread(
            sessions.prepare_turn, agent_id, body.session_id, device, viewer, require_actor=True
        )
    if body.session_id is not None:
        await require_owned_session(agents, body.session_id, caller)
    return await asyncio.to_thread(sessions.prepare_turn, agent_id, body.session_id, actor_id, viewer)


@router.post("/agents/{agent_id}/invoke", response_model=InvokeResponse)
async def invoke(
    agent_id: AgentId,
    body: InvokeRequest,
    agents: Agents,
    sessions: ProfileSessionsDep,
    settings: Settings,
    caller: Caller,
    response: Response,
    idempotency_key: IdempotencyKey = None,
    device_id: DeviceId = None,
) -> InvokeResponse:
    """Run one turn through the profile; no `session_id` starts a new session of it.

    With an `Idempotency-Key`, a retry of a turn already stored in the session returns its answer and stores nothing.
    `X-Device-ID` and the stateless fallback as on `/process`.
    """
    check_prompt(body.prompt, settings)
    actor_id = turn_actor(body.actor_id, settings, caller, device_id)
    async with agents.admission.admitted(actor_id) as ticket:
        turn = await _prepare(agent_id, body, agents, sessions, caller, device_id, actor_id)
        result = await agents.run_turn(
            TurnRequest(
                turn.session_id,
                body.prompt,
                actor_id=turn.actor_id,
                idempotency_key=idempotency_key,
                profile=turn.profile,
                require_actor=device_id is not None or caller is not None,
            ),
            ticket,
        )
    if not result.session_managed:
        response.headers[DEGRADED_HEADER] = "stateless"
    return _invoke_response(turn, result, settings)


@router.post("/agents/{agent_id}/invoke-streaming", responses=SSE_RESPONSES)
async def invoke_streaming(
    agent_id: AgentId,
    body: InvokeRequest,
    agents: Agents,
    sessions: ProfileSessionsDep,
    settings: Settings,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
    device_id: DeviceId = None,
) -> EventSourceResponse:
    """Run one turn through the profile as SSE (events as `/process-streaming`)."""
    check_prompt(body.prompt, settings)
    actor_id = turn_actor(body.actor_id, settings, caller, device_id)
    async with agents.admission.admitted(actor_id) as ticket:
        turn = await _prepare(agent_id, body, agents, sessions, caller, device_id, actor_id)
        return await turn_stream(
            turn.session_id,
            lambda on_text, on_model_start: agents.run_turn(
                TurnRequest(
                    turn.session_id,
                    body.prompt,
                    actor_id=turn.actor_id,
                    idempotency_key=idempotency_key,
                    profile=turn.profile,
                    require_actor=device_id is not None or caller is not None,
                    on_text=on_text,
                    on_model_start=on_model_start,
                ),
                ticket,
            ),
            lambda result: _invoke_response(turn, result, settings),
            headers={DEGRADED_HEADER: "stateless"} if agents.degraded() else None,
        )
