"""App factory of the agent service: lifespan (model, agent cache, idle expiry), error handlers and routers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from strands.models.model import Model

from ..agent import SessionAgents
from ..models import build_model
from ..observability import AgentMetrics, configure_logging
from ..settings import AgentSettings, get_settings
from .errors import EXCEPTION_HANDLERS
from .middleware import BodySizeLimit
from .routers import active_agent, health, process, sessions, ws


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
        chosen = model if model is not None else await asyncio.to_thread(build_model, settings)
        load = getattr(chosen, "load", None)
        if callable(load):
            await asyncio.to_thread(load)
        agents = SessionAgents(settings, chosen, metrics=metrics)
        app.state.agents = agents
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
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.state.settings = settings
    for router in (process.router, sessions.router, active_agent.router, ws.router, health.router):
        app.include_router(router)

    metrics.instrument(app)

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def get_metrics() -> Response:
        """Prometheus metrics: requests and latency per route, turns by outcome, agent cache, backend errors."""
        return metrics.response()

    return app
