"""Request metrics of both services (Prometheus): counts and latencies per route template, in a registry per app."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator


class HttpMetrics:
    """`http_requests_total{handler,method,status}` and `http_request_duration_seconds{handler,method}`.

    A registry of its own per app, so apps built in one process never clash; a service adds its own metrics to
    `registry`.

    Args:
        buckets: the duration histogram's buckets, in seconds.
        duration_help: the duration histogram's help text.
    """

    def __init__(
        self,
        buckets: tuple[float, ...],
        duration_help: str = "Time to answer a request, by route template and method (seconds).",
    ) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "http_requests",
            "Requests answered, by route template, method and status class (2xx, 4xx, 5xx).",
            ["handler", "method", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            duration_help,
            ["handler", "method"],
            buckets=buckets,
            registry=self.registry,
        )
        # (handler, method, status) -> the two metrics' children: labels resolved once, not per request.
        self._http_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def instrument(self, app: FastAPI) -> None:
        """Count requests and time them per route template (`/v1/sessions/{session_id}`, not the raw path).

        A fast lane in front of the app's stack records the requests it answers itself, through `record_request`.
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

    def response(self) -> Response:
        """The registry in Prometheus' text format."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
