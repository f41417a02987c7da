"""Structured logs of both services: the request's ids on every record, text or JSON lines (`LOG_FORMAT`)."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from pythonjsonlogger.json import JsonFormatter
from starlette.requests import Request

# Ids of the request (or turn) being served, attached to every log record written while it is.
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


async def bind_log_context(request: Request) -> None:
    """Router dependency: the session and actor ids of the request's path go into every log record of it."""
    for name in ("session_id", "actor_id"):
        value = request.path_params.get(name)
        if value is not None:
            LOG_CONTEXT[name].set(value)


class ContextFilter(logging.Filter):
    """Adds the ids of `LOG_CONTEXT` to each record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the ids; never drops a record."""
        for name, var in LOG_CONTEXT.items():
            if not hasattr(record, name):
                setattr(record, name, var.get())
        return True


def configure_logging(level: str, log_format: str) -> None:
    """Configure the root logger once per process: text lines, or JSON lines (with the ids) when `log_format` is json.

    Args:
        level: a logging level name (`info`, `debug`, ...).
        log_format: `text` or `json`.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    if any(getattr(h, "_service_kit", None) == log_format for h in root.handlers):
        return  # configured already (the runner, then the app factory in a worker process)
    handler = logging.StreamHandler()
    handler._service_kit = log_format  # type: ignore[attr-defined]
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
