"""Listing 10,000 messages of one agent: server-side (the store's query and JSON assembly, in process) and over
HTTP from the backend process (what a restore pays), medians of repeated runs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from session_backend.db.group_commit import Writer
from session_backend.db.pool import create_pool
from session_backend.db.sessions import SessionStore

from .common import backend, median, scratch_database
from .seed import seed_postgres


def run(messages: int = 10_000, samples: int = 15) -> dict[str, Any]:
    """Median milliseconds for the store call and for `GET .../messages` of `messages` rows."""
    session_id = "bench-list"
    with scratch_database() as database_url:
        seed_postgres(database_url, session_id, messages)

        async def store_times() -> tuple[list[float], int]:
            pool = await create_pool(database_url, min_size=1, max_size=2)
            try:
                store = SessionStore(Writer(pool))
                out, size = [], 0
                for _ in range(samples + 2):
                    started = time.perf_counter()
                    body, _ = await store.list_messages(session_id, "default", offset=0, limit=None)
                    out.append((time.perf_counter() - started) * 1000)
                    size = len(body)
                return out[2:], size
            finally:
                await pool.close()

        server_side, size = asyncio.run(store_times())
        with backend(database_url) as url, httpx.Client(base_url=url) as client:
            http: list[float] = []
            for i in range(samples + 2):
                started = time.perf_counter()
                r = client.get(f"/v1/sessions/{session_id}/agents/default/messages")
                r.raise_for_status()
                if i >= 2:
                    http.append((time.perf_counter() - started) * 1000)
    return {
        "messages": messages,
        "bytes": size,
        "server_side_ms": median(server_side),
        "http_get_ms": median(http),
    }
