"""Metrics of the session backend (`GET /metrics`, Prometheus text format).

HTTP counts and latencies per route (`http_requests_total{handler,method,status}`,
`http_request_duration_seconds{handler,method}`) are `service_kit.metrics.HttpMetrics`; what the database holds (live
sessions, leases, sessions per active agent) is read once per scrape, never on the request path. Logs are
`service_kit.logs`' (the request's session and actor ids on every record).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
from fastapi import Request
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service_kit.metrics import HttpMetrics

logger = logging.getLogger(__name__)

HTTP_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Buckets of `http_request_duration_seconds` (seconds): an append takes milliseconds, an export seconds."""


class _DatabaseCollector(Collector):
    """Gauges of what the database holds (as of the last refresh) and of the connection pool (as of now)."""

    def __init__(self, metrics: BackendMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self._metrics.counts
        if counts is not None:
            yield GaugeMetricFamily("session_backend_active_sessions", "Live (unexpired) sessions.", counts["sessions"])
            yield GaugeMetricFamily("session_backend_active_leases", "Live session leases.", counts["leases"])
            by_agent = GaugeMetricFamily(
                "session_backend_sessions_per_active_agent",
                "Live sessions routed to each agent profile.",
                labels=["agent_id"],
            )
            for agent_id, sessions in sorted(counts["active_agents"].items()):
                by_agent.add_metric([agent_id], sessions)
            yield by_agent
        pool = self._metrics.pool
        if pool is not None:
            connections = GaugeMetricFamily(
                "session_backend_db_pool_connections", "Connections of the pool by state.", labels=["state"]
            )
            size, idle = pool.get_size(), pool.get_idle_size()
            connections.add_metric(["in_use"], size - idle)
            connections.add_metric(["idle"], idle)
            yield connections


class BackendMetrics(HttpMetrics):
    """The backend's metrics, in a registry of their own (one per app, so apps built in one process never clash).

    Args:
        refresh_interval: scrapes closer together than this reuse the database counts of the last one (seconds).
    """

    def __init__(self, refresh_interval: float = 1.0) -> None:
        super().__init__(HTTP_DURATION_BUCKETS)
        self.expired_sessions = Counter(
            "session_backend_expired_sessions_deleted",
            "Expired sessions deleted by the sweeper.",
            registry=self.registry,
        )
        self.errors = Counter(
            "session_backend_errors", "Requests answered with an error, by kind.", ["kind"], registry=self.registry
        )
        self.pool: asyncpg.Pool | None = None
        self.counts: dict[str, Any] | None = None
        self._refreshed = -float("inf")
        self._refresh_interval = refresh_interval
        self.registry.register(_DatabaseCollector(self))

    async def refresh(self, read: Any) -> None:
        """Re-read the database counts through `read()` (a coroutine function), unless read moments ago.

        A database that does not answer within 2 s leaves the last counts in place.
        """
        if time.monotonic() - self._refreshed < self._refresh_interval:
            return
        try:
            async with asyncio.timeout(2):
                self.counts = await read()
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            logger.warning("error=<%r> | metrics: database counts not refreshed", e)
            self.errors.labels(kind="metrics_database").inc()
            return
        self._refreshed = time.monotonic()

    def count_error(self, kind: str) -> None:
        """Count one request answered with an error of `kind`."""
        self.errors.labels(kind=kind).inc()


def count_error(request: Request, kind: str) -> None:
    """Count an error answered to `request` in its app's metrics (apps without metrics ignore it)."""
    metrics: BackendMetrics | None = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.count_error(kind)
