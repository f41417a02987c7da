"""uvicorn's HTTP protocol with a read deadline, so idle and half-sent requests cannot hold connections forever."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..settings import get_settings


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request is not read whole within the read timeout.

    The clock starts when the connection opens and again when a request's first byte arrives; it stops once the
    request (headers and body) is read. An idle connection that never sends a request, one that stops mid-headers
    and one that stops mid-body are all closed. Between requests, uvicorn's keep-alive timeout applies as usual. The
    timeout is `AGENT_READ_TIMEOUT_SECONDS` (read in every worker process).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Create the protocol for one connection (arguments as uvicorn's `HttpToolsProtocol`)."""
        super().__init__(*args, **kwargs)
        self._read_timeout = get_settings().read_timeout_seconds
        self._read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the read clock for the first request."""
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        """Restart the read clock: a request has begun and must be read whole in time."""
        super().on_message_begin()
        self._arm()

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
