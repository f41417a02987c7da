"""Serving either service with uvicorn: a bounded HTTP protocol, coalesced writes, and the console-script runner.

Idle and half-sent requests cannot hold connections forever; a response's headers and body leave in one send.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from typing import Any, Protocol

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .logs import configure_logging
from .problems import problem


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request is not read whole within `read_timeout`.

    The clock starts when the connection opens and again when a request's first byte arrives; it stops once the
    request (headers and body) is read. An idle connection that never sends a request, one that stops mid-headers
    and one that stops mid-body are all closed. Between requests, uvicorn's keep-alive timeout applies as usual. Its
    writes go through a `CoalescingTransport`.

    Beyond `max_connections` open connections (or as many requests in flight), a request is answered 503 with
    `Retry-After: 1` and a problem body, as the services' own refusals are, and its connection closed: uvicorn's
    `limit_concurrency` applies the same count but answers in plain text with no `Retry-After`, so `serve` leaves it
    unset and the protocol counts.

    Args:
        *args: as uvicorn's `HttpToolsProtocol`.
        read_timeout: seconds a request may take to arrive whole (`serve` binds it with `functools.partial`, which
            survives uvicorn's worker processes).
        max_connections: the most connections and requests in flight per worker process; None: no limit.
        **kwargs: as uvicorn's `HttpToolsProtocol`.
    """

    def __init__(
        self, *args: Any, read_timeout: float = 15.0, max_connections: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        self._read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the read clock for the first request; writes go through a `CoalescingTransport`."""
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        self._arm()

    def on_message_begin(self) -> None:
        """Restart the read clock: a request has begun and must be read whole in time."""
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        """Start the request's ASGI task: the app's, or past `max_connections` the overload answer (503)."""
        cap = self._max_connections
        if cap is None or (len(self.connections) < cap and len(self.tasks) < cap):
            super().on_headers_complete()
            return
        self.logger.warning(
            "connections=<%d>, limit=<%d> | over the connection limit: answered 503", len(self.connections), cap
        )
        app, self.app = self.app, _over_the_limit
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        """Stop the read clock: the request is read (answering it may take as long as it takes)."""
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the read clock with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._read_deadline = self.loop.call_later(self._read_timeout, self._expire)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _expire(self) -> None:
        self._read_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


async def _over_the_limit(scope: Any, receive: Any, send: Any) -> None:
    response = problem(
        503, "the server is at its connection limit; retry shortly", {"Retry-After": "1", "Connection": "close"}
    )
    await response(scope, receive, send)


class CoalescingTransport:
    """An asyncio transport whose writes within one event-loop iteration leave as one `send(2)`.

    uvicorn writes a response's status line and headers, then its body, as two writes, hence two system calls and
    two TCP segments; the wrapper joins them (they are written in one iteration) and sends the bytes when the loop
    next runs its ready callbacks. That made 15% more appends/s at 64 clients (one backend worker, `wrk`); the two
    writes were a fifth of the worker's CPU samples in a py-spy profile. Everything but `write` and `close` is the
    wrapped transport's own (flow control, `is_closing`, `get_extra_info`, `abort`).

    Args:
        transport: the connection's transport (a socket transport of the event loop).
        loop: the event loop it belongs to.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue `data`; it is sent with the iteration's other writes, in order."""
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data if isinstance(data, bytes) else bytes(data))  # a caller's buffer may change

    def flush(self) -> None:
        """Send what is queued now (nothing, once the transport is closing: its peer is gone)."""
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Queue each of `list_of_data`, as `write`."""
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        """Send what is queued, then end the sending side."""
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        """Send what is queued, then close (the transport sends its own buffer before it closes)."""
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        """Every other attribute is the wrapped transport's (`abort` drops what is queued, as it drops its buffer)."""
        return getattr(self._transport, name)


class ServingSettings(Protocol):
    """What `serve` reads of a service's settings class (both services' classes have these fields)."""

    @property
    def host(self) -> str: ...  # noqa: D102

    @property
    def port(self) -> int: ...  # noqa: D102

    @property
    def log_level(self) -> str: ...  # noqa: D102

    @property
    def log_format(self) -> str: ...  # noqa: D102

    @property
    def read_timeout_seconds(self) -> float: ...  # noqa: D102

    @property
    def max_connections(self) -> int: ...  # noqa: D102


def serve(
    app_factory: str,
    settings: ServingSettings,
    *,
    workers: int = 1,
    access_log: bool = True,
    ws_max_bytes: int = 16 * 1024 * 1024,
) -> None:
    """Run an app factory with uvicorn until SIGINT/SIGTERM, bounded and logged as `settings` say.

    Args:
        app_factory: `"module:function"` returning the ASGI app (imported in each worker process).
        settings: listen address and port, log level and format (`configure_logging`), the read timeout of
            `BoundedHttpProtocol` (seconds), and the most concurrent connections (beyond them a 503 problem with
            `Retry-After: 1`).
        workers: worker processes.
        access_log: one log line per answered request (uvicorn's access log, at level info).
        ws_max_bytes: the largest WebSocket message read (bytes); a larger one closes the socket with 1009 unread.
    """
    configure_logging(settings.log_level, settings.log_format)
    # uvicorn formats an access line's arguments (client address, quoted path) before the logger drops it: below
    # level info nothing is written, so nothing is formatted either.
    access_log = access_log and logging.getLogger().isEnabledFor(logging.INFO)
    uvicorn.run(
        app_factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        http=functools.partial(  # type: ignore[arg-type]
            BoundedHttpProtocol, read_timeout=settings.read_timeout_seconds, max_connections=settings.max_connections
        ),
        ws_max_size=ws_max_bytes,
        log_level=settings.log_level,
        access_log=access_log,
        # A worker process still importing on a loaded host is not taken for dead (uvicorn's default: 5 s).
        timeout_worker_healthcheck=60,
        # uvicorn's own records go to the root handler: JSON like the rest under LOG_FORMAT=json.
        log_config=None,
    )
