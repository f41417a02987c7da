"""App factory of the agent service: /process, /process-streaming (SSE), session list/history/delete, /health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from strands.models.model import Model
from strands.types.exceptions import SessionException

from ..agent import AGENT_ID, SessionAgents, TurnResult
from ..exceptions import (
    BackendUnavailableError,
    SessionBusyError,
    SessionConflictError,
    SessionNotFoundError,
)
from ..models import build_model
from ..settings import AgentSettings, get_settings
from .schemas import (
    IDENTIFIER_PATTERN,
    HistoryResponse,
    Identifier,
    Problem,
    ProcessRequest,
    ProcessResponse,
    TurnStatus,
)

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem(status: int, detail: str | None = None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An RFC 9457 `application/problem+json` response."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _status_of(exc: BaseException) -> tuple[int, str]:
    """HTTP status and client-facing detail for an error raised by a turn or a backend call."""
    if isinstance(exc, SessionNotFoundError):
        return 404, "session not found"
    if isinstance(exc, SessionBusyError):
        return 409, "the session is busy with another turn; retry shortly"
    if isinstance(exc, BackendUnavailableError):
        return 503, "the session backend is unavailable; nothing of this turn was acknowledged, retry shortly"
    if isinstance(exc, SessionConflictError):
        return 409, "the session was changed by another writer during this turn; retry the turn"
    if isinstance(exc, SessionException):
        return 502, f"the session backend refused the request: {exc}"
    return 500, "the turn failed inside the agent"


def create_app(settings: AgentSettings | None = None, model: Model | None = None) -> FastAPI:
    """Build the agent service.

    Args:
        settings: configuration; defaults to `get_settings()` (environment variables).
        model: the Strands model; defaults to the one `MODEL_PROVIDER` names (loaded at start-up).

    Returns:
        The app; its lifespan builds the model and the agent cache, and closes them on shutdown.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        chosen = model if model is not None else await asyncio.to_thread(build_model, settings)
        load = getattr(chosen, "load", None)
        if callable(load):
            await asyncio.to_thread(load)
        agents = SessionAgents(settings, chosen)
        app.state.agents = agents

        async def expire_idle() -> None:
            while True:
                await asyncio.sleep(min(30.0, settings.agent_idle_seconds))
                agents.expire_idle()

        expiry = asyncio.create_task(expire_idle(), name="agent-idle-expiry")
        try:
            yield
        finally:
            expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await expiry
            await asyncio.to_thread(agents.close)

    app = FastAPI(
        title="Strands agent service",
        version="1.0.0",
        summary="Strands agents whose conversations live in PostgreSQL (via the session backend).",
        lifespan=lifespan,
    )
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}} for code in (404, 409, 422, 502, 503)
    }

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        detail = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5])
        return problem(422, detail)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem(exc.status_code, str(exc.detail), exc.headers)

    async def session_error(_: Request, exc: Exception) -> Response:
        status, detail = _status_of(exc)
        headers = {"Retry-After": "1"} if status == 503 or isinstance(exc, SessionBusyError) else None
        return problem(status, detail, headers)

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(SessionException, session_error)

    def agents_of(request: Request) -> SessionAgents:
        agents: SessionAgents = request.app.state.agents
        return agents

    def check_prompt(body: ProcessRequest) -> str:
        if len(body.prompt) > settings.max_prompt_chars:
            raise HTTPException(422, f"prompt is longer than {settings.max_prompt_chars} characters")
        return body.session_id or uuid.uuid4().hex

    def to_response(result: TurnResult) -> ProcessResponse:
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
            ),
        )

    @app.post("/process", response_model=ProcessResponse, responses=errors)
    async def process(body: ProcessRequest, request: Request) -> ProcessResponse:
        """Run one turn and answer with the reply once every message of the turn is stored."""
        session_id = check_prompt(body)
        result = await agents_of(request).run_turn(session_id, body.prompt, actor_id=body.actor_id)
        return to_response(result)

    @app.post(
        "/process-streaming",
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "SSE: text..., then done or error"},
            **errors,
        },
    )
    async def process_streaming(body: ProcessRequest, request: Request) -> EventSourceResponse:
        """Run one turn, streaming `{"type":"text"}` events as the model writes, then `{"type":"done"}`."""
        session_id = check_prompt(body)
        agents = agents_of(request)

        async def events() -> AsyncIterator[dict[str, str]]:
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[str | None] = asyncio.Queue()

            def on_text(text: str) -> None:
                loop.call_soon_threadsafe(queue.put_nowait, text)

            turn = asyncio.ensure_future(
                agents.run_turn(session_id, body.prompt, actor_id=body.actor_id, on_text=on_text)
            )
            turn.add_done_callback(lambda _: queue.put_nowait(None))
            yield {"data": orjson.dumps({"type": "start", "session_id": session_id}).decode()}
            while (text := await queue.get()) is not None:
                yield {"data": orjson.dumps({"type": "text", "data": text}).decode()}
            try:
                result = turn.result()
            except Exception as e:
                status, detail = _status_of(e)
                error = {"type": "error", "status": status, "detail": detail, "session_id": session_id}
                yield {"data": orjson.dumps(error).decode()}
                return
            done = {"type": "done"} | to_response(result).model_dump()
            yield {"data": orjson.dumps(done).decode()}

        return EventSourceResponse(events(), ping=15)

    @app.get("/sessions", responses=errors)
    async def list_sessions(
        request: Request,
        actor_id: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: Annotated[str | None, Query(max_length=2048)] = None,
    ) -> dict[str, Any]:
        """Sessions from the backend, newest first (`{items, next_cursor}`; pass `cursor` for the next page)."""
        repository = agents_of(request).repository
        return await asyncio.to_thread(repository.list_sessions, actor_id=actor_id, limit=limit, cursor=cursor)

    @app.get("/sessions/{session_id}/history", response_model=HistoryResponse, responses=errors)
    async def history(session_id: Annotated[Identifier, Path()], request: Request) -> HistoryResponse:
        """The session's conversation in order."""
        messages = await asyncio.to_thread(agents_of(request).history, session_id)
        if messages is None:
            raise HTTPException(404, f"session {session_id!r} not found")
        return HistoryResponse.model_validate({"session_id": session_id, "messages": messages})

    @app.delete("/sessions/{session_id}", status_code=204, responses=errors)
    async def delete_session(session_id: Annotated[Identifier, Path()], request: Request) -> Response:
        """Delete the session's data in the backend and drop its cached agent."""
        await agents_of(request).delete(session_id)
        return Response(status_code=204)

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        """The process is alive; reports the model provider and how many agents are cached."""
        return {
            "status": "ok",
            "model_provider": settings.model_provider,
            "cached_agents": agents_of(request).cached_count(),
        }

    return app
