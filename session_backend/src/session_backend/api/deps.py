"""Dependencies of the v1 routers: the bearer-key check (attached once, in the app factory), the stores, path ids.

A new resource's router comes from `v1_router` and takes its store through an `Annotated` alias here.
"""

from __future__ import annotations

import hmac
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service_kit.jsonbody import StrictJSONRoute

from ..db.convert import SessionConverter
from ..db.erasure import ErasureStore
from ..db.fork import SessionForks
from ..db.memories import ActorMemoryStore
from ..db.profiles import ProfileStore
from ..db.sessions import SessionStore
from ..db.storage import StorageStore
from ..db.turns import TurnStore
from ..schemas.common import MAX_MESSAGE_ID, Identifier
from ..settings import Settings
from .errors import PROBLEM_RESPONSES, PROBLEM_STATUSES

JSON = "application/json"
_bearer = HTTPBearer(auto_error=False)

# Dependencies are coroutines: FastAPI runs plain functions on a worker thread, a hop per request.


async def require_api_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """When `SESSION_BACKEND_API_KEY` is set, require `Authorization: Bearer <key>` (constant-time compare).

    Raises:
        HTTPException: 401 with `WWW-Authenticate: Bearer` when the key is missing or wrong.
    """
    settings: Settings = request.app.state.settings
    if settings.api_key is None:
        return
    supplied = credentials.credentials if credentials else ""
    if not hmac.compare_digest(supplied.encode(), settings.api_key.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


def _state(name: str) -> Any:
    async def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    get.__doc__ = f"The app's `{name}`, created in its lifespan."
    return get


Sessions = Annotated[SessionStore, Depends(_state("sessions"))]
Turns = Annotated[TurnStore, Depends(_state("turns"))]
Profiles = Annotated[ProfileStore, Depends(_state("profiles"))]
Memories = Annotated[ActorMemoryStore, Depends(_state("memories"))]
Storage = Annotated[StorageStore, Depends(_state("storage"))]
Erasures = Annotated[ErasureStore, Depends(_state("erasures"))]
Converter = Annotated[SessionConverter, Depends(_state("converter"))]
Forks = Annotated[SessionForks, Depends(_state("forks"))]

SessionId = Annotated[Identifier, Path()]
AgentId = Annotated[Identifier, Path()]
MultiAgentId = Annotated[Identifier, Path()]
ActorId = Annotated[Identifier, Path()]
MessageIdPath = Annotated[int, Path(ge=0, le=MAX_MESSAGE_ID)]


def v1_router(prefix: str, tags: list[str | Enum], problems: tuple[int, ...] = PROBLEM_STATUSES) -> APIRouter:
    """A router under `/v1<prefix>` with strict JSON bodies, documenting problem answers of `problems` statuses.

    The bearer-key check and the log context are attached to every v1 router in `app.create_app`, once.
    """
    responses: dict[int | str, dict[str, Any]] = {code: PROBLEM_RESPONSES[code] for code in problems}
    return APIRouter(prefix=f"/v1{prefix}", tags=tags, responses=responses, route_class=StrictJSONRoute)


def json_response(text: str | bytes, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A response whose body is JSON text the store (PostgreSQL) already rendered."""
    return Response(content=text, status_code=status_code, media_type=JSON, headers=headers)
