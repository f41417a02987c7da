"""App factory of the agent service: lifespan (model, agent cache, idle expiry), error handlers, routers, the page."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from strands.models.model import Model

from service_kit.problems import BodySizeLimit

from ..agent import SessionAgents
from ..models import build_model
from ..observability import AgentMetrics, configure_logging
from ..profiles import AgentProfileClient
from ..service.invocations import ProfileSessions
from ..settings import AgentSettings, get_settings
from ..tracing import use_recording_aware_tracer
from .deps import get_caller
from .errors import EXCEPTION_HANDLERS
from .routers import active_agent, actors, agents, health, process, sessions, ws

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
"""The chat page's static files (index.html, app.js, style.css), shipped in the package."""


async def _expire_idle_forever(agents: SessionAgents, idle_seconds: float) -> None:
    while True:
        await asyncio.sleep(min(30.0, idle_seconds))
        agents.expire_idle()


async def _release_leases_forever(agents: SessionAgents, interval: float = 1.0) -> None:
    # Leases whose release met a dead backend are released once it answers again, so that other processes do not
    # wait out the TTL on a session this process no longer uses.
    while True:
        await asyncio.sleep(interval)
        if agents.has_unreleased():
            await asyncio.to_thread(agents.release_pending)


def create_app(settings: AgentSettings | None = None, model: Model | None = None) -> FastAPI:
    """Build the agent service.

    Args:
        settings: configuration; defaults to `get_settings()` (environment variables).
        model: the Strands model; defaults to the one `MODEL_PROVIDER` names (loaded at start-up).

    Returns:
        The app; its lifespan builds the model and the agent cache, and closes them on shutdown.
    """
    settings = settings or get_settings()
    if settings.log_format == "json":
        configure_logging(settings.log_level, settings.log_format)
    metrics = AgentMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        use_recording_aware_tracer()  # before any agent: no message serialisation for spans nobody records
        chosen = model if model is not None else await asyncio.to_thread(build_model, settings)
        load = getattr(chosen, "load", None)
        if callable(load):
            await asyncio.to_thread(load)
        agents = SessionAgents(settings, chosen, metrics=metrics)
        app.state.agents = agents
        app.state.profile_sessions = ProfileSessions(
            agents.repository, AgentProfileClient(client=agents.client), settings.session_default_ttl_seconds
        )
        tasks = [
            asyncio.create_task(_expire_idle_forever(agents, settings.agent_idle_seconds), name="agent-expiry"),
            asyncio.create_task(_release_leases_forever(agents), name="lease-release"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await asyncio.to_thread(agents.close)

    app = FastAPI(
        title="Strands agent service",
        version="1.0.0",
        summary="Strands agents whose conversations live in PostgreSQL (via the session backend).",
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        # FastAPI's native OpenTelemetry hooks look up the global providers on every request; this service's
        # metrics are Prometheus' (`/metrics`), its traces Strands' own.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.state.settings = settings
    # Every router but health answers only a caller with a key (when AGENT_API_KEYS is set): add new routers here.
    for router in (
        process.router,
        sessions.router,
        agents.router,
        actors.router,
        actors.erasure_router,
        active_agent.router,
        ws.router,
    ):
        app.include_router(router, dependencies=[Depends(get_caller)])
    app.include_router(health.router)
    metrics.instrument(app)

    @app.get("/metrics", tags=["health"], response_class=Response, dependencies=[Depends(get_caller)])
    async def get_metrics() -> Response:
        """Prometheus metrics: requests and latency per route, turns by outcome, agent cache, backend errors."""
        return metrics.response()

    _add_page(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Device-ID"],
            expose_headers=["Retry-After", "X-Session-Degraded"],
        )
    return app


def _add_page(app: FastAPI) -> None:
    """`GET /`: the chat page, and `/static/`: its script and style (public: the page itself asks for the key)."""

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
