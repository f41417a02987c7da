"""`PostgreSQLStorage`: Strands' unified `Storage` over the session backend's `/v1/storage` routes.

`SnapshotSessionManager`, `FileMemoryStore` and context offloading keep their bytes in PostgreSQL through it.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
from strands.storage.storage import _NAMESPACED, StorageSearchResult, _normalize_key, _normalize_prefix
from strands.types.exceptions import SessionException, StorageError
from tenacity import AsyncRetrying

from . import _json
from ._http import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, backend_client, checked, retry_policy, unavailable

if TYPE_CHECKING:
    from strands.storage.search.types import SearchStrategy

logger = logging.getLogger(__name__)

OBJECTS = "/v1/storage/objects"
KEYS = "/v1/storage/keys"
_PAGE = 5000


def _in_strands_bridge_loop() -> bool:
    # Strands runs the async side of a sync call (`SnapshotSessionManager.initialize`, `sync_agent`) with
    # `asyncio.run` on a worker thread: a loop that ends with the call. A client cached for it would outlive it.
    try:
        from strands._async import is_run_async_bridge
    except ImportError:  # pragma: no cover - older Strands
        return False
    return bool(is_run_async_bridge())


class _Clients:
    """One keep-alive `httpx.AsyncClient` per event loop (an async client's connections belong to one loop)."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float | httpx.Timeout) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def _new(self) -> httpx.AsyncClient:
        return backend_client(self.base_url, self.api_key, self.timeout, asynchronous=True, max_connections=32)

    @asynccontextmanager
    async def get(self) -> AsyncIterator[httpx.AsyncClient]:
        if _in_strands_bridge_loop():
            async with self._new() as client:
                yield client
            return
        loop = asyncio.get_running_loop()
        cached = self._by_loop.get(loop)
        if cached is None or cached.is_closed:
            cached = self._by_loop[loop] = self._new()
        yield cached

    async def aclose(self) -> None:
        client = self._by_loop.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()


class PostgreSQLStorage:
    """Strands `Storage` in PostgreSQL through the session backend: bytes under keys, sorted listing, ranked search.

    Semantics are those of Strands' `InMemoryStorage`: keys are normalized by Strands' rules (a bad key raises
    `StorageError` before any request), reading a missing key returns None, deleting one is a no-op, `list`
    returns full keys sorted, and `search` ranks values with PostgreSQL full-text search. Every request is async
    (`httpx.AsyncClient`, one per event loop) and retried when the backend is unreachable or restarting::

        manager = SnapshotSessionManager("user-42", storage=PostgreSQLStorage("http://localhost:8001"))

    Args:
        base_url: URL of the session backend.
        api_key: bearer token for the backend.
        prefix: scopes every key (two instances with different prefixes never see each other's keys).
        timeout: per-request timeout in seconds, or an `httpx.Timeout`.
        retries: attempts per request (every storage request is idempotent).
        search_strategy: a Strands `SearchStrategy`; when set, `write` indexes through it and `search` delegates
            to it instead of the backend's full-text search.

    Raises:
        StorageError: `prefix` breaks Strands' key rules.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        prefix: str = "",
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = 4,
        search_strategy: SearchStrategy[Any] | None = None,
    ) -> None:
        """Create the storage; no request is sent until the first operation."""
        normalized = _normalize_prefix(prefix).rstrip("/")
        self._prefix = f"{normalized}/" if normalized else ""
        self._clients = _Clients(base_url, api_key, timeout)
        self._retries = max(1, retries)
        self._search_strategy = search_strategy

    @property
    def prefix(self) -> str:
        """The prefix of every key this instance sees (empty, or ending with `/`)."""
        return self._prefix

    def namespace(self, prefix: str) -> PostgreSQLStorage:
        """Return a view scoped further under `prefix` (same backend, client and search strategy).

        Like `InMemoryStorage.namespace`, the view is a copy of this instance (a subclass stays a subclass), its
        keys and search results are relative to the prefix, and it is marked as already namespaced for Strands.

        Raises:
            StorageError: `prefix` breaks Strands' key rules.
        """
        normalized = _normalize_prefix(prefix).rstrip("/")
        scoped = copy.copy(self)
        scoped._prefix = f"{self._prefix}{normalized}/" if normalized else self._prefix
        scoped._namespaced = _NAMESPACED  # type: ignore[attr-defined]
        return scoped

    async def aclose(self) -> None:
        """Close the HTTP client of the running event loop (others close when their loop is collected)."""
        await self._clients.aclose()

    # transport

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        body: Any = None,
        missing_ok: bool = False,
    ) -> httpx.Response | None:
        """Send one idempotent request (retried); map the outcome to `StorageError`, or None for 404 `missing_ok`."""
        headers = {"Content-Type": "application/octet-stream"} if content is not None else None
        if body is not None:
            content, headers = _json.dumps(body), {"Content-Type": "application/json"}
        retrying = AsyncRetrying(**retry_policy(self._retries))
        try:
            async with self._clients.get() as client:
                async for attempt in retrying:
                    with attempt:
                        response = await client.request(method, path, params=params, content=content, headers=headers)
                        if response.status_code >= 500:
                            response.raise_for_status()
            return checked(method, path, response, missing_ok=missing_ok)
        except (httpx.TransportError, httpx.HTTPStatusError) as e:
            raise StorageError(str(unavailable(method, path, e))) from e
        except SessionException as e:
            raise StorageError(str(e)) from e

    def _key(self, key: str) -> tuple[str, str]:
        normalized = _normalize_key(key)
        return normalized, f"{self._prefix}{normalized}"

    # Storage

    async def write(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, overwriting any existing value.

        Raises:
            StorageError: the key is invalid, or the backend refused or is unreachable.
        """
        normalized, full = self._key(key)
        await self._call("PUT", OBJECTS, params={"key": full}, content=bytes(data))
        logger.debug("key=<%s>, bytes=<%d> | wrote storage object", full, len(data))
        if self._search_strategy is not None:
            try:
                await self._search_strategy.index(self, normalized, data)
            except Exception as error:
                raise StorageError(f"Wrote '{key}' but indexing failed") from error

    async def read(self, key: str) -> bytes | None:
        """Return the bytes stored under `key`, or None when there are none.

        Raises:
            StorageError: the key is invalid, or the backend refused or is unreachable.
        """
        _, full = self._key(key)
        response = await self._call("GET", OBJECTS, params={"key": full}, missing_ok=True)
        return None if response is None else response.content

    async def delete(self, key: str) -> None:
        """Delete the value under `key`; a no-op when there is none.

        Raises:
            StorageError: the key is invalid, or the backend refused or is unreachable.
        """
        _, full = self._key(key)
        await self._call("DELETE", OBJECTS, params={"key": full})
        logger.debug("key=<%s> | deleted storage object", full)

    async def list(self, query: str = "") -> builtins.list[str]:
        """List the keys starting with `query` (empty: every key), sorted, relative to this instance's prefix.

        Raises:
            StorageError: the prefix is invalid, or the backend refused or is unreachable.
        """
        full = f"{self._prefix}{_normalize_prefix(query)}"
        keys: builtins.list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"prefix": full, "limit": _PAGE}
            if cursor is not None:
                params["cursor"] = cursor
            response = await self._call("GET", KEYS, params=params)
            assert response is not None
            page = _json.loads(response.content)
            cut = len(self._prefix)
            keys.extend(k[cut:] for k in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return keys

    async def search(self, query: str) -> builtins.list[StorageSearchResult]:
        """Rank the values under this instance's prefix against `query`, best first.

        Without a search strategy, PostgreSQL full-text search ranks them (any query word, stemmed, stop words
        dropped, in the value's text or its key without extension; more words rank higher). Results carry no
        `data`: read the keys needed.

        Raises:
            StorageError: the backend refused or is unreachable.
        """
        if self._search_strategy is not None:
            return await self._search_strategy.search(self, query)
        response = await self._call("GET", "/v1/storage/search", params={"query": query, "prefix": self._prefix})
        assert response is not None
        cut = len(self._prefix)
        return [
            StorageSearchResult(key=hit["key"][cut:], score=hit["score"])
            for hit in _json.loads(response.content)["items"]
        ]

    # beyond the protocol

    async def clear(self) -> int:
        """Delete every key this instance sees (under its prefix; every key when it has none), in one request.

        Unlike `InMemoryStorage.clear`, this is a coroutine: it never blocks the event loop.

        Returns:
            How many keys were deleted.

        Raises:
            StorageError: the backend refused or is unreachable.
        """
        if not self._prefix:
            keys = await self.list("")
            for key in keys:
                await self.delete(key)
            return len(keys)
        response = await self._call("DELETE", KEYS, params={"prefix": self._prefix})
        assert response is not None
        return int(_json.loads(response.content)["count"])

    async def copy(self, source_prefix: str, target_prefix: str) -> int:
        """Copy every key under `source_prefix` to the same key under `target_prefix`, server-side.

        Both prefixes are relative to this instance's prefix and name folders (a trailing `/` is implied); they must
        not overlap. Existing target keys are overwritten. This is how a snapshot session is forked.

        Returns:
            How many keys were copied.

        Raises:
            StorageError: a prefix is invalid or empty, or the backend refused or is unreachable.
        """
        source, target = (_normalize_prefix(p).rstrip("/") for p in (source_prefix, target_prefix))
        if not source or not target:
            raise StorageError("copy prefixes must not be empty")
        body = {"source_prefix": f"{self._prefix}{source}/", "target_prefix": f"{self._prefix}{target}/"}
        response = await self._call("POST", "/v1/storage/copy", body=body)
        assert response is not None
        return int(_json.loads(response.content)["count"])
