"""App factory of the session backend: lifespan (database, migrations, sweeper), middleware, routes, health."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg
import orjson
from fastapi import Depends, FastAPI, Request, Response
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from . import memories, profiles
from .db import EmbeddedPostgres, create_pool
from .errors import EXCEPTION_HANDLERS, UNAVAILABLE_ERRORS, problem
from .hotpath import HotPath
from .middleware import BodySizeLimit
from .migrations import MIGRATIONS, apply_migrations, current_version
from .observability import BackendMetrics, bind_log_context, configure_logging
from .routes import require_api_key, router
from .settings import Settings, get_settings
from .storage_routes import router as storage_router
from .storage_store import StorageStore
from .store import SessionStore

logger = logging.getLogger(__name__)

_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


class BackendApp(FastAPI):
    """The backend's FastAPI app; with `hot_path` set, that fast lane wraps its whole middleware stack.

    Attributes:
        hot_path: `stack -> ASGI app` (a `HotPath` factory) or None: the stack is served as FastAPI builds it.
    """

    hot_path: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        """FastAPI's stack (error, telemetry, body-limit and user middleware, then the routes), inside `hot_path`."""
        stack = super().build_middleware_stack()
        return self.hot_path(stack) if self.hot_path is not None else stack


async def _sweep_forever(store: SessionStore, interval: float, batch_size: int, metrics: BackendMetrics) -> None:
    """Delete (and count) expired sessions every `interval` seconds; an outage is logged and retried next round."""
    while True:
        await asyncio.sleep(interval)
        try:
            deleted = await store.sweep_expired(batch_size)
        except (*UNAVAILABLE_ERRORS, asyncpg.PostgresError) as e:  # type: ignore[misc]
            logger.warning("error=<%r> | sweep of expired sessions failed", e)
            metrics.count_error("sweep")
            continue
        metrics.expired_sessions.inc(deleted)
        if deleted:
            logger.info("deleted=<%d> | swept expired sessions", deleted)


async def _connect(settings: Settings, dsn: str) -> asyncpg.Pool:
    # A replica may start before its database: wait for it (bounded), then fail loudly.
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(UNAVAILABLE_ERRORS),
        wait=wait_exponential(multiplier=0.2, max=2),
        stop=stop_after_delay(30),
        reraise=True,
    ):
        with attempt:
            pool = await create_pool(
                dsn,
                min_size=settings.pool_min_size,
                max_size=settings.pool_max_size,
                statement_cache_size=0 if settings.pgbouncer else 100,
            )
            async with pool.acquire() as conn:
                await apply_migrations(conn)
    return pool


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the FastAPI app.

    Args:
        settings: configuration; defaults to `get_settings()` (environment variables).

    Returns:
        The app; its lifespan opens the pool (starting embedded PostgreSQL when `DATABASE_URL` is unset), applies
        migrations, starts the expiry sweeper, and undoes all of it on shutdown.
    """
    settings = settings or get_settings()
    if settings.log_format == "json":
        configure_logging(settings.log_level, settings.log_format)  # also in worker processes (`workers` > 1)
    metrics = BackendMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        embedded: EmbeddedPostgres | None = None
        dsn = settings.database_url
        if dsn is None:
            embedded = await asyncio.to_thread(EmbeddedPostgres, settings.data_dir / "postgres")
            dsn = embedded.dsn
        pool = await _connect(settings, dsn)
        store = SessionStore(pool, group_commit=settings.group_commit)
        app.state.store = store
        metrics.pool = pool
        app.state.storage_store = StorageStore(pool)
        app.state.memory_store = await memories.open_memory_store(pool, settings, metrics.registry)
        backfill = asyncio.create_task(app.state.memory_store.backfill(), name="memory-backfill")
        sweeper = asyncio.create_task(
            _sweep_forever(store, settings.sweep_interval_seconds, settings.sweep_batch_size, metrics), name="sweeper"
        )
        try:
            yield
        finally:
            for task in (sweeper, backfill):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            metrics.pool = None
            if app.state.memory_store.embedder is not None:
                await app.state.memory_store.embedder.aclose()
            await pool.close()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    app = BackendApp(
        title="Strands session backend",
        version="1.0.0",
        summary="Strands sessions, agents, messages and multi-agent state in PostgreSQL.",
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        # FastAPI's native OpenTelemetry hooks look up the global providers (and the environment) on every request (a
        # fifteenth of an append's CPU when appends still went through them); off with the fast lane, whose `levers`
        # rows measure both together. This service's metrics are Prometheus' (`/metrics`).
        telemetry=_NO_TELEMETRY if settings.hot_path else None,
    )
    if settings.hot_path:
        app.hot_path = functools.partial(HotPath, owner=app, settings=settings, record=metrics.record_request)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    logged = [Depends(bind_log_context)]
    app.include_router(router, dependencies=logged)
    app.include_router(profiles.router, dependencies=[*router.dependencies, *logged])
    app.include_router(memories.router, dependencies=[*router.dependencies, *logged])
    app.include_router(storage_router)
    app.state.settings = settings
    app.state.metrics = metrics
    metrics.instrument(app)

    # Behind the bearer key like /v1: the gauges name agent profiles and cost a query per scrape.
    @app.get("/metrics", tags=["health"], response_class=Response, dependencies=[Depends(require_api_key)])
    async def get_metrics(request: Request) -> Response:
        """Prometheus metrics: requests and latency per route, errors by kind, sweeps, database and pool gauges."""
        store: SessionStore = request.app.state.store
        await metrics.refresh(store.counts)
        return metrics.response()

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        """The process is alive (does not touch the database)."""
        return {"status": "ok"}

    @app.get("/ready", tags=["health"], responses={503: {"description": "database unreachable or not migrated"}})
    async def ready(request: Request) -> Response:
        """200 when the database answers and its schema is at the latest migration, else 503.

        `memory_search` is `hybrid` (pgvector and an embedder: meaning and words) or `full_text`.
        """
        store: SessionStore = request.app.state.store
        try:
            async with asyncio.timeout(2):
                async with store.pool.acquire() as conn:
                    version = await current_version(conn)
        except (*UNAVAILABLE_ERRORS, asyncpg.PostgresError) as e:  # type: ignore[misc]
            # The cause goes to the log only: it names the database, its host and the driver.
            logger.warning("error=<%r> | database not ready", e)
            return problem(503, "database unavailable", headers={"Retry-After": "1"})
        if version != len(MIGRATIONS):
            return problem(503, f"schema at version {version}, expected {len(MIGRATIONS)}")
        body = {"status": "ready", "schema_version": version, "memory_search": request.app.state.memory_store.mode}
        return Response(orjson.dumps(body), media_type="application/json")

    return app
