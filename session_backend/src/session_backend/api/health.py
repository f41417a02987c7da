"""Routes of the process itself: `/health` (alive), `/ready` (database reachable and migrated), `/metrics`."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import orjson
from fastapi import APIRouter, Depends, Request, Response

from service_kit.problems import problem

from ..db.errors import UNAVAILABLE_ERRORS
from ..db.migrations import current_version
from ..observability import BackendMetrics
from ..sql.migrations import MIGRATIONS
from .deps import Memories, Sessions, require_api_key

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


# Behind the bearer key like /v1: the gauges name agent profiles and cost a query per scrape.
@router.get("/metrics", response_class=Response, dependencies=[Depends(require_api_key)])
async def get_metrics(request: Request) -> Response:
    """Prometheus metrics: requests and latency per route, errors by kind, sweeps, database and pool gauges."""
    metrics: BackendMetrics = request.app.state.metrics
    await metrics.refresh(request.app.state.housekeeping.counts)
    return metrics.response()


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is alive (does not touch the database)."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "database unreachable or not migrated"}})
async def ready(store: Sessions, memories: Memories) -> Response:
    """200 when the database answers and its schema is at the latest migration, else 503.

    `memory_search` is `hybrid` (pgvector and an embedder: meaning and words) or `full_text`.
    """
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
    body = {"status": "ready", "schema_version": version, "memory_search": memories.mode}
    return Response(orjson.dumps(body), media_type="application/json")
