"""Dependencies of the agent service's routes, as `Annotated` aliases (`agents: Agents`, `caller: Caller`, ...).

Access control lives here: `get_caller` (the API key → its actor; every router but health depends on it, see
`api/app.py`) and `require_owned_session` (another actor's session reads as absent), the one ownership check.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from ..agent import SessionAgents
from ..exceptions import SessionNotFoundError
from ..memory import PostgreSQLMemoryStore
from ..service.invocations import ProfileSessions
from ..settings import AgentSettings
from .schemas import Identifier

# Dependencies are coroutines: FastAPI runs plain functions on a worker thread, a hop per request.


async def get_agents(request: Request) -> SessionAgents:
    """The agent runner created in the app's lifespan."""
    agents: SessionAgents = request.app.state.agents
    return agents


async def get_app_settings(request: Request) -> AgentSettings:
    """The settings the app was created with."""
    settings: AgentSettings = request.app.state.settings
    return settings


Agents = Annotated[SessionAgents, Depends(get_agents)]
Settings = Annotated[AgentSettings, Depends(get_app_settings)]


async def get_idempotency_key(
    settings: Settings,
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=r"^[\x21-\x7e]{1,256}$",
            description="A retry with the same key on the same session returns the first answer and stores nothing.",
        ),
    ] = None,
) -> str | None:
    """The request's `Idempotency-Key` (1-256 printable ASCII characters).

    Raises:
        HTTPException: 422 with `SESSION_MANAGER=snapshot`, whose snapshots record no turns to answer a retry from.
    """
    if key is not None and settings.session_manager != "repository":
        raise HTTPException(422, "Idempotency-Key needs SESSION_MANAGER=repository (snapshot sessions record no turns)")
    return key


IdempotencyKey = Annotated[str | None, Depends(get_idempotency_key)]


@dataclass(frozen=True)
class CallerIdentity:
    """Who sent the request: the actor its API key stands for; `admin` for a key of `AGENT_ADMIN_KEYS`."""

    actor_id: str
    admin: bool = False


_bearer = HTTPBearer(auto_error=False, description="A key of `AGENT_API_KEYS` (when set): `Bearer <key>`.")


def _digest(key: str) -> bytes:
    # Equal-length digests: compare_digest's time then reveals nothing about a key's length either.
    return hashlib.sha256(key.encode()).digest()


async def get_caller(
    connection: HTTPConnection, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> CallerIdentity | None:
    """The caller's identity from `Authorization: Bearer <key>`; None when access control is off.

    Raises:
        HTTPException: 401 (with `WWW-Authenticate: Bearer`) when keys are configured and none matches.
    """
    return caller_for_key(connection.app.state.settings, credentials.credentials if credentials is not None else None)


def caller_for_key(settings: AgentSettings, key: str | None) -> CallerIdentity | None:
    """The actor an API key stands for (`AGENT_API_KEYS`); None when access control is off.

    Args:
        settings: the app's settings (its keys).
        key: the key presented (the credentials of `Authorization: Bearer <key>`), None when none was.

    Raises:
        HTTPException: 401 (with `WWW-Authenticate: Bearer`) when keys are configured and `key` is none of them.
    """
    if not settings.api_keys:
        return None
    presented = _digest(key) if key is not None else b""
    caller = None
    for admin, keys in ((False, settings.api_keys), (True, settings.admin_keys)):
        for key, key_actor in keys.items():
            # Every key is compared, matched or not, so the time taken does not tell which one matched.
            if hmac.compare_digest(presented, _digest(key)):
                caller = CallerIdentity(key_actor, admin)
    if caller is None:
        detail = "a valid API key is required: Authorization: Bearer <key>"
        raise HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})
    return caller


Caller = Annotated[CallerIdentity | None, Depends(get_caller)]
"""The caller (None: access control off). Routers include it router-wide; routes name it when they need the actor."""


def profile_viewer(caller: CallerIdentity | None) -> str | None:
    """The actor whose profiles a request may read and use (`AgentProfile.usable_by`); None: every profile.

    Access control off and admin keys see every profile; any other key its actor's own, shared and ownerless ones.
    """
    return None if caller is None or caller.admin else caller.actor_id


def actor_of(caller: CallerIdentity | None, claimed: str | None) -> str | None:
    """The actor a request acts as: the key's when access control is on, else the one the request names.

    Raises:
        HTTPException: 403 when the request names an actor other than its key's.
    """
    if caller is None:
        return claimed
    if claimed is not None and claimed != caller.actor_id:
        raise HTTPException(403, "actor_id is decided by the API key; it names another actor")
    return caller.actor_id


def device_actor(caller: CallerIdentity | None, device_id: uuid.UUID, claimed: str | None) -> str:
    """The actor of a turn sent with `X-Device-ID`: the device itself.

    Raises:
        HTTPException: 422 when the body names another actor; 403 when access control is on and the key stands for
            another actor than the device.
    """
    device = str(device_id)
    if claimed is not None and claimed != device:
        raise HTTPException(422, "actor_id differs from X-Device-ID: the device is the actor")
    actor_of(caller, device)
    return device


async def require_owned_session(
    agents: SessionAgents, session_id: str, caller: CallerIdentity | None, *, must_exist: bool = True
) -> None:
    """Refuse another actor's session exactly as an absent one (no-op when access control is off).

    Args:
        agents: the agent runner (its repository reads the session's actor).
        session_id: the session the request names.
        caller: the caller; None when access control is off.
        must_exist: False when an absent session is fine (a turn that starts a new session).

    Raises:
        SessionNotFoundError: the session belongs to another actor, or is absent and `must_exist`.
    """
    if caller is None:
        return
    record = await asyncio.to_thread(agents.repository.read_session_record, session_id)
    if (record is None and must_exist) or (record is not None and record.get("actor_id") != caller.actor_id):
        raise SessionNotFoundError(f"session {session_id!r} not found")


async def get_owned_session_id(session_id: Annotated[Identifier, Path()], agents: Agents, caller: Caller) -> str:
    """The `{session_id}` path parameter, once `require_owned_session` accepted it."""
    await require_owned_session(agents, session_id, caller)
    return session_id


OwnedSessionId = Annotated[str, Depends(get_owned_session_id)]
"""A `{session_id}` path parameter of an existing session the caller owns (404 otherwise)."""


async def get_own_actor_id(actor_id: Annotated[Identifier, Path()], caller: Caller) -> str:
    """The `{actor_id}` path parameter (memories, ...): with access control on, only the caller's own; 404 otherwise.

    Raises:
        HTTPException: 404 when it names another actor than the caller's key.
    """
    if caller is not None and actor_id != caller.actor_id:
        raise HTTPException(404, "actor not found")
    return actor_id


OwnActorId = Annotated[str, Depends(get_own_actor_id)]
"""An `{actor_id}` path parameter the caller may use: its own actor when access control is on, any when off."""


async def get_erasable_actor_id(actor_id: Annotated[Identifier, Path()], caller: Caller) -> str:
    """The `{actor_id}` path parameter of an erasure: the caller's own actor, or any with an admin key (or when open).

    Raises:
        HTTPException: 404 when a non-admin key names another actor (as for its memories).
    """
    if caller is not None and not caller.admin and actor_id != caller.actor_id:
        raise HTTPException(404, "actor not found")
    return actor_id


ErasableActorId = Annotated[str, Depends(get_erasable_actor_id)]
"""An `{actor_id}` the caller may erase: its own, any with an admin key (`AGENT_ADMIN_KEYS`), any with access off."""


async def get_profile_sessions(request: Request) -> ProfileSessions:
    """Agent profiles and their sessions (created in the app's lifespan)."""
    sessions: ProfileSessions = request.app.state.profile_sessions
    return sessions


ProfileSessionsDep = Annotated[ProfileSessions, Depends(get_profile_sessions)]


async def get_actor_memories(actor_id: OwnActorId, agents: Agents) -> PostgreSQLMemoryStore:
    """The memory store of the `{actor_id}` path parameter (the caller's own), on the service's backend client."""
    return PostgreSQLMemoryStore(actor_id, client=agents.client)


ActorMemories = Annotated[PostgreSQLMemoryStore, Depends(get_actor_memories)]
"""The long-term memories of the `{actor_id}` the caller may use (404 for another actor's with access control on)."""


DeviceId = Annotated[
    uuid.UUID | None,
    Header(
        alias="X-Device-ID",
        description="A UUID naming the device: it is the actor, and without a session_id its live session goes on.",
    ),
]
