"""Metrics (`GET /metrics`, Prometheus text format) and structured logs of the session backend.

HTTP counts and latencies per route (`http_requests_total{handler,method,status}`,
`http_request_duration_seconds{handler,method}`) come from `prometheus-fastapi-instrumentator`, except on the hot
path's two routes, which record the same two metrics without its per-request objects; what the database holds (live
sessions, leases, sessions per active agent) is read once per scrape, never on the request path. Log records carry
the request's session and actor ids; `LOG_FORMAT=json` writes them as JSON lines (`python-json-logger`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_fastapi_instrumentator import Instrumentator
from pythonjsonlogger.json import JsonFormatter

logger = logging.getLogger(__name__)

HTTP_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Buckets of `http_request_duration_seconds` (seconds): an append takes milliseconds, an export seconds."""

# Ids of the request being served, attached to every log record written while it is.
LOG_CONTEXT: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(name, default=None) for name in ("session_id", "actor_id", "device_id")
}

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class ContextFilter(logging.Filter):
    """Adds the ids of `LOG_CONTEXT` to each record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the ids; never drops a record."""
        for name, var in LOG_CONTEXT.items():
            if not hasattr(record, name):
                setattr(record, name, var.get())
        return True


def configure_logging(level: str, log_format: str) -> None:
    """Configure the root logger once per process: text lines, or JSON lines when `log_format` is `json`.

    Args:
        level: a logging level name (`info`, `debug`, ...).
        log_format: `text` or `json`.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    if any(getattr(h, "_session_backend", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler._session_backend = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(session_id)s %(actor_id)s %(device_id)s",
                rename_fields={"levelname": "level", "name": "logger", "asctime": "time"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root.handlers = [handler]


async def bind_log_context(request: Request) -> None:
    """Router dependency: the session and actor ids of the request's path go into every log record of it."""
    for name in ("session_id", "actor_id"):
        value = request.path_params.get(name)
        if value is not None:
            LOG_CONTEXT[name].set(value)


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


class BackendMetrics:
    """The backend's metrics, in a registry of their own (one per app, so apps built in one process never clash).

    Args:
        refresh_interval: scrapes closer together than this reuse the database counts of the last one (seconds).
    """

    def __init__(self, refresh_interval: float = 1.0) -> None:
        self.registry = CollectorRegistry()
        self.expired_sessions = Counter(
            "session_backend_expired_sessions_deleted",
            "Expired sessions deleted by the sweeper.",
            registry=self.registry,
        )
        self.errors = Counter(
            "session_backend_errors", "Requests answered with an error, by kind.", ["kind"], registry=self.registry
        )
        self.http_requests = Counter(
            "http_requests",
            "Requests answered, by route template, method and status class (2xx, 4xx, 5xx).",
            ["handler", "method", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer a request, by route template and method (seconds).",
            ["handler", "method"],
            buckets=HTTP_DURATION_BUCKETS,
            registry=self.registry,
        )
        # (handler, method, status) -> the two metrics' children: labels resolved once, not per request.
        self._http_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self.pool: asyncpg.Pool | None = None
        self.counts: dict[str, Any] | None = None
        self._refreshed = -float("inf")
        self._refresh_interval = refresh_interval
        self.registry.register(_DatabaseCollector(self))

    def instrument(self, app: FastAPI) -> None:
        """Count requests and time them per route template (`/v1/sessions/{session_id}`, not the raw path).

        The fast lane (`hotpath.HotPath`) wraps the whole middleware stack and records the appends and batches it
        answers itself, through `record_request`; the instrumentator records every other request.
        """
        instrumentator = Instrumentator(registry=self.registry, excluded_handlers=["/metrics"])
        instrumentator.add(
            lambda info: self.record_request(
                info.modified_handler, info.method, info.modified_status, info.modified_duration
            )
        ).instrument(app)

    def record_request(self, handler: str, method: str, status: str, seconds: float) -> None:
        """Count one answered request (`status`: its class, e.g. `2xx`) and its duration in seconds."""
        key = (handler, method, status)
        children = self._http_children.get(key)
        if children is None:
            children = (self.http_requests.labels(*key), self.http_duration.labels(handler, method))
            self._http_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

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

    def response(self) -> Response:
        """The registry in Prometheus' text format."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def count_error(request: Request, kind: str) -> None:
    """Count an error answered to `request` in its app's metrics (apps without metrics ignore it)."""
    metrics: BackendMetrics | None = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.count_error(kind)
