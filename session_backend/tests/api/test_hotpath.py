"""The fast lane and a client that leaves mid-body: nothing is answered, stored or passed on."""

from __future__ import annotations

import asyncio
from typing import Any

from session_backend.api.hotpath import HotPath
from session_backend.settings import Settings


def test_a_body_cut_short_by_a_disconnect_is_not_a_request() -> None:
    passed_on: list[Any] = []
    sent: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        passed_on.append(scope)

    settings = Settings.model_construct(api_key=None, max_body_bytes=1_000)
    hot = HotPath(app, owner=None, settings=settings)
    messages = [
        {"type": "http.request", "body": b'{"message_id": 0, "message": ', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Any:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/sessions/s1/agents/a/messages",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"60")],
    }
    asyncio.run(hot(scope, receive, send))
    assert passed_on == [] and sent == []  # owner=None: had it reached the store, it would have raised
