"""StorageStore: bytes under keys in PostgreSQL (the backend of Strands' `Storage`), with ranked full-text search."""

from __future__ import annotations

import logging
import re

import asyncpg

from ..sql import storage as storage_sql
from ..sql.common import SESSION_STORAGE_PREFIX
from .encryption import Codec
from .errors import StoreError

logger = logging.getLogger(__name__)

# The btree of the primary key refuses entries over ~2.7 kB; keys stay well below.
MAX_KEY_BYTES = 1024
# Only the start of a value is indexed for search: to_tsvector costs ~0.25 ms per KiB, so this bounds the write of a
# multi-MiB snapshot (bench row "snapshot save") and keeps every tsvector far under its 1 MiB limit.
MAX_INDEXED_CHARS = 32_768

_SLASH_RUNS = re.compile(r"/+")
_NON_WORD = re.compile(r"\W+")


class InvalidKey(StoreError):
    """A storage key or prefix breaks Strands' key rules (or this backend's length limit)."""

    status = 422
    title = "Unprocessable Content"


def check_key(key: str) -> str:
    """Validate a storage key by Strands' rules: already normalized as `strands.storage` normalizes keys.

    A key is non-empty, has no backslash, no empty segment (`//`), no leading or trailing `/`, no `..` segment,
    no NUL character, and at most `MAX_KEY_BYTES` bytes of UTF-8.

    Args:
        key: the key as received.

    Returns:
        The key, unchanged.

    Raises:
        InvalidKey: the key breaks a rule.
    """
    _check_common(key, "key")
    if not key:
        raise InvalidKey("storage key must not be empty")
    if _SLASH_RUNS.sub("/", key).strip("/") != key:
        raise InvalidKey(f"storage key {key!r} is not normalized (leading, trailing or repeated '/')")
    return key


def check_prefix(prefix: str) -> str:
    """Validate a list prefix by Strands' rules (an empty prefix matches every key; a trailing `/` is kept).

    Raises:
        InvalidKey: the prefix breaks a rule.
    """
    _check_common(prefix, "prefix")
    if _SLASH_RUNS.sub("/", prefix).lstrip("/") != prefix:
        raise InvalidKey(f"storage prefix {prefix!r} is not normalized (leading or repeated '/')")
    return prefix


def _check_common(value: str, what: str) -> None:
    if "\\" in value:
        raise InvalidKey(f"storage {what} {value!r}: backslashes are not allowed")
    if "\x00" in value:
        raise InvalidKey(f"storage {what} {value!r}: NUL characters are not allowed")
    if ".." in value.split("/"):
        raise InvalidKey(f"storage {what} {value!r}: '..' path segments are not allowed")
    if len(value.encode("utf-8", errors="surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKey(f"storage {what} is longer than {MAX_KEY_BYTES} bytes")


def searchable_text(data: bytes) -> str:
    """The text of a value as the search index sees it: lenient UTF-8 (any bytes are accepted), words only.

    Splitting on non-word characters, as Strands' keyword search tokenizes, keeps PostgreSQL's parser from reading
    `a/b/c` or `x.md` as one path or file token.
    """
    text = data[: MAX_INDEXED_CHARS * 4].decode("utf-8", errors="replace")[:MAX_INDEXED_CHARS]
    return _NON_WORD.sub(" ", text)


def index_text(codec: Codec, key: str, data: bytes) -> str:
    """What the full-text index keeps of a storage value: its words (`searchable_text`), or nothing.

    Nothing with encryption on in a search mode other than `fulltext`, and never, with encryption on, of a session's
    objects (its snapshots: whole conversations).
    """
    if codec.enabled and key.startswith(SESSION_STORAGE_PREFIX):
        return ""
    return codec.index_text(searchable_text(data)) or ""


class StorageStore:
    """Store of Strands `Storage` objects (bytes under keys) in PostgreSQL.

    Args:
        pool: an asyncpg pool created by `session_backend.db.create_pool`.
    """

    def __init__(self, pool: asyncpg.Pool, codec: Codec | None = None) -> None:
        """Keep the pool; connections are taken per call."""
        self.pool = pool
        self.codec = codec or Codec(pool)

    async def write(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, overwriting any value.

        With encryption on the value is sealed under its session's data key (keys under `session/<id>/`) or the shared
        storage key, and the search index keeps its words only in the `fulltext` search mode, and never of a
        session's objects (snapshots).

        Raises:
            InvalidKey: the key breaks Strands' key rules.
        """
        check_key(key)
        sealer = await self.codec.for_storage_key(self.pool, key)
        await self.pool.execute(storage_sql.UPSERT_OBJECT, key, sealer.data(data), index_text(self.codec, key, data))
        logger.debug("key=<%s>, bytes=<%d> | wrote storage object", key, len(data))

    async def read(self, key: str) -> bytes | None:
        """Return the bytes under `key`, or None when there are none.

        Raises:
            InvalidKey: the key breaks Strands' key rules.
        """
        check_key(key)
        value: bytes | None = await self.pool.fetchval(storage_sql.SELECT_OBJECT, key)
        return None if value is None else await self.codec.open_data(value)

    async def delete(self, key: str) -> None:
        """Delete the value under `key`; a no-op when there is none.

        Raises:
            InvalidKey: the key breaks Strands' key rules.
        """
        check_key(key)
        await self.pool.execute(storage_sql.DELETE_OBJECT, key)
        logger.debug("key=<%s> | deleted storage object", key)

    async def list_keys(self, prefix: str, *, limit: int, after: str | None) -> tuple[list[str], str | None]:
        """List keys starting with `prefix` in byte order, one page at a time.

        Args:
            prefix: keys must start with it (empty: every key).
            limit: page size.
            after: the last key of the previous page.

        Returns:
            The page, and the key to continue after (None on the last page).

        Raises:
            InvalidKey: the prefix breaks Strands' key rules.
        """
        check_prefix(prefix)
        rows = await self.pool.fetch(storage_sql.LIST_KEYS, prefix, after, limit + 1)
        keys = [str(r[0]) for r in rows]
        more = len(keys) > limit
        keys = keys[:limit]
        return keys, keys[-1] if more and keys else None

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with `prefix` (one statement).

        Returns:
            How many were deleted.

        Raises:
            InvalidKey: the prefix breaks Strands' key rules.
        """
        check_prefix(prefix)
        deleted = int(await self.pool.fetchval(storage_sql.DELETE_PREFIX, prefix))
        logger.debug("prefix=<%s>, deleted=<%d> | deleted storage prefix", prefix, deleted)
        return deleted

    async def copy_prefix(self, source: str, target: str) -> int:
        """Copy every key under `source` to the same key under `target` (overwriting), in one statement.

        Returns:
            How many keys were copied.

        Raises:
            InvalidKey: a prefix breaks Strands' key rules, is empty or lacks a trailing `/` (so every copied key
                is a valid key), or they overlap (one starts with the other).
        """
        for prefix in (check_prefix(source), check_prefix(target)):
            if not prefix.endswith("/") or prefix == "/":
                raise InvalidKey(f"copy prefix {prefix!r} must be non-empty and end with '/'")
        if source.startswith(target) or target.startswith(source):
            raise InvalidKey("source and target prefixes must not overlap")
        copied = int(await self.pool.fetchval(storage_sql.COPY_PREFIX, source, target))
        logger.debug("source=<%s>, target=<%s>, copied=<%d> | copied storage prefix", source, target, copied)
        return copied

    async def search(self, query: str, *, prefix: str, limit: int) -> list[tuple[str, float]]:
        """Rank the values under `prefix` against `query` with PostgreSQL full-text search, best first.

        Any query term matching ranks a value (more terms, higher); the key relative to `prefix` counts as text.

        Returns:
            `(key, score)` pairs, score > 0.

        Raises:
            InvalidKey: the prefix breaks Strands' key rules.
        """
        check_prefix(prefix)
        rows = await self.pool.fetch(storage_sql.SEARCH_OBJECTS, prefix, query.replace("\x00", " "), limit)
        return [(str(r[0]), float(r[1])) for r in rows]
