"""App factory of the session backend: lifespan (database, migrations, sweeper), middleware, routes, health."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg
from fastapi import Depends, FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from service_kit.docs import add_docs, docs_disabled
from service_kit.logs import bind_log_context, configure_logging
from service_kit.problems import BodySizeLimit

from .api import actors, health, memories, profiles, sessions, storage, turns
from .api.deps import require_api_key
from .api.errors import EXCEPTION_HANDLERS
from .api.hotpath import HotPath
from .db.convert import SessionConverter
from .db.encryption import Codec
from .db.erasure import ErasureStore
from .db.errors import UNAVAILABLE_ERRORS
from .db.fork import SessionForks
from .db.group_commit import Writer
from .db.housekeeping import Housekeeping
from .db.keys import key_provider
from .db.memories import open_memory_store
from .db.migrations import apply_migrations
from .db.pool import EmbeddedPostgres, create_pool
from .db.profiles import ProfileStore
from .db.sessions import SessionStore
from .db.storage import StorageStore
from .db.turns import TurnStore
from .observability import BackendMetrics
from .settings import Settings, get_settings

logger = logging.getLogger(__name__)

# How often the embedded PostgreSQL (DATABASE_URL unset) is checked for a dead postmaster, in seconds.
EMBEDDED_WATCH_SECONDS = 1.0

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


async def _sweep_forever(store: Housekeeping, interval: float, batch_size: int, metrics: BackendMetrics) -> None:
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


async def _watch_embedded(embedded: EmbeddedPostgres, interval: float = EMBEDDED_WATCH_SECONDS) -> None:
    """Restart the embedded PostgreSQL whenever its postmaster is found dead (checked every `interval` seconds).

    The pool needs nothing: its broken connections are dropped, new ones reach the restarted server (same socket).
    A failed restart (the dead server's backends still exiting) is logged and tried again next round.
    """
    while True:
        await asyncio.sleep(interval)
        if embedded.running():
            continue
        try:
            await asyncio.to_thread(embedded.restart)
        except Exception as e:
            logger.warning("error=<%r> | restart of the embedded postgresql failed, retrying", e)


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
        codec = Codec(
            pool, key_provider(settings), cache_size=settings.data_key_cache_size, search=settings.encrypted_search
        )
        try:
            async with pool.acquire() as conn:
                await codec.check(conn)
        except BaseException:
            await pool.close()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
            raise
        writer = Writer(pool, group_commit=settings.group_commit, codec=codec)
        store = SessionStore(writer)
        app.state.sessions = store
        app.state.turns = TurnStore(writer)
        app.state.profiles = ProfileStore(pool)
        app.state.memories = memory_store = await open_memory_store(pool, settings, metrics.registry, codec)
        app.state.storage = StorageStore(pool, codec)
        app.state.erasures = ErasureStore(pool, codec)
        app.state.converter = SessionConverter(pool, codec)
        app.state.forks = SessionForks(pool, codec)
        app.state.housekeeping = Housekeeping(pool)
        metrics.pool = pool
        watcher = asyncio.create_task(_watch_embedded(embedded), name="embedded-watch") if embedded else None
        sweeper = asyncio.create_task(
            _sweep_forever(Housekeeping(pool), settings.sweep_interval_seconds, settings.sweep_batch_size, metrics),
            name="sweeper",
        )
        # Memories stored without a vector (before pgvector or the embedder) are embedded in the background.
        backfill = asyncio.create_task(memory_store.backfill(), name="memory-backfill")
        # What start-up built (modules, routes, schemas, the pool) lives as long as the app: kept out of the cycle
        # collector's full passes, which otherwise walk all of it while requests wait (tens of ms each, about 5 us
        # an append at 64 clients). Garbage is collected first, so only live objects are frozen; they are handed
        # back to the collector at shutdown (an app in a test or host process leaves nothing frozen behind).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            for task in (sweeper, watcher, backfill):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            metrics.pool = None
            if memory_store.embedder is not None:
                await memory_store.embedder.aclose()
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
        **docs_disabled(),
    )
    if settings.hot_path:
        app.hot_path = functools.partial(HotPath, owner=app, settings=settings, record=metrics.record_request)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # The key check and the log context, once for every v1 router.
    v1 = [Depends(require_api_key), Depends(bind_log_context)]
    for module in (sessions, turns, profiles, memories, storage, actors):
        app.include_router(module.router, dependencies=v1)
    app.include_router(health.router)
    add_docs(app, [Depends(require_api_key)], public=settings.docs_public)
    app.state.settings = settings
    app.state.metrics = metrics
    metrics.instrument(app)
    return app
