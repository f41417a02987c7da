"""Metrics (`GET /metrics`, Prometheus text format) and structured logs of the agent service.

HTTP counts and latencies per route come from `prometheus-fastapi-instrumentator` (and from the fast lane of
streamed turns, which records its own); `SessionAgents` counts turns by
outcome, agent cache hits and backend errors by kind. Log records carry the turn's session, actor and device ids
(context variables, copied onto the worker thread of a turn); `LOG_FORMAT=json` writes JSON lines.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator
from pythonjsonlogger.json import JsonFormatter

# Ids of the turn being served, attached to every log record written while it is.
LOG_CONTEXT: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(name, default=None) for name in ("session_id", "actor_id", "device_id")
}

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


@contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    """Attach `session_id` / `actor_id` / `device_id` to the log records written inside the block."""
    tokens = [(LOG_CONTEXT[name], LOG_CONTEXT[name].set(value)) for name, value in ids.items() if value is not None]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Adds the ids of `LOG_CONTEXT` to each record (None outside a turn)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the ids; never drops a record."""
        for name, var in LOG_CONTEXT.items():
            if not hasattr(record, name):
                setattr(record, name, var.get())
        return True


def configure_logging(level: str, log_format: str) -> None:
    """Configure the root logger: text lines, or JSON lines (with the context ids) when `log_format` is `json`.

    Args:
        level: a logging level name (`info`, `debug`, ...).
        log_format: `text` or `json`.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    handler = logging.StreamHandler()
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


class AgentMetrics:
    """The agent service's metrics, in a registry of their own (one per app: apps built in one process never clash).

    `cache_size` reads the agent cache at scrape time (`SessionAgents` sets its function).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.turns = Counter(
            "agent_turns",
            "Turns by outcome: ok, replayed (Idempotency-Key), stateless (backend down), or the error's kind.",
            ["outcome"],
            registry=self.registry,
        )
        self.turn_seconds = Histogram(
            "agent_turn_duration_seconds", "Wall time of managed turns, waiting excluded.", registry=self.registry
        )
        self.cache_lookups = Counter(
            "agent_cache_lookups", "Agent cache lookups at the start of a turn.", ["result"], registry=self.registry
        )
        self.speculative_turns = Counter(
            "agent_speculative_turns",
            "Turns on a cached agent started before their lease was confirmed, by outcome (confirmed: the lease "
            "showed the agent current; mispredicted: busy, stale, routed or a replay, so the turn ran again).",
            ["outcome"],
            registry=self.registry,
        )
        self.backend_errors = Counter(
            "agent_backend_errors", "Session backend failures met by turns, by kind.", ["kind"], registry=self.registry
        )
        self.turns_in_progress = Gauge(
            "agent_turns_in_progress", "Turns running or waiting for their session now.", registry=self.registry
        )
        self.cache_size = Gauge("agent_cache_size", "Agents held in memory.", registry=self.registry)
        self.http_requests = Counter(
            "http_requests",
            "Requests answered, by route template, method and status class (2xx, 4xx, 5xx).",
            ["handler", "method", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer a request, to the end of its body (a streamed turn: its whole stream), by route template "
            "and method (seconds).",
            ["handler", "method"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        # (handler, method, status) -> the two metrics' children: labels resolved once, not per request.
        self._http_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def instrument(self, app: FastAPI) -> None:
        """Count requests and time them per route template (`/v1/agents/{agent_id}`, not the raw path)."""
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

    def response(self) -> Response:
        """The registry in Prometheus' text format."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
