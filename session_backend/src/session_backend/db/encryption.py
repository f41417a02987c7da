"""Encryption at rest: content sealed with AES-256-GCM under a data key per actor (or per session), envelope-wrapped.

Every store seals content just before its SQL write and opens it right after its read, through one `Codec`; with
encryption off the codec is the identity and the same path runs. A sealed value (`db/sealing.py`: the token, its
kinds, sealing under one data key) is stored as a JSON string in `json` columns (so SQL still builds the API's JSON
text around it, and opening replaces the quoted token by the plaintext JSON text), as text in
`actor_memories.content`, as bytes in `storage_objects.value`. The token names its data key, so a fork or a storage
copy can copy ciphertext as is.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from service_kit import jsoncodec

from ..sql import encryption as sql
from .errors import NotFound
from .keys import KeyConfigurationError, KeyProvider
from .sealing import (
    BARE_TOKEN,
    IDENTITY,
    MEMORY,
    QUOTED_TOKEN,
    STORAGE,
    STORAGE_SCOPE,
    TOKEN_PREFIX,
    DataKey,
    EncryptionError,
    Sealer,
    actor_scope,
    session_scope,
)

logger = logging.getLogger(__name__)

SearchMode = Literal["fulltext", "vectors", "none"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class _Cache:
    """Unwrapped data keys by id and the key id of each scope, both bounded (least recently used goes first)."""

    size: int
    by_id: OrderedDict[str, DataKey]

    def get(self, key_id: str) -> DataKey | None:
        key = self.by_id.get(key_id)
        if key is not None:
            self.by_id.move_to_end(key_id)
        return key

    def put(self, key: DataKey) -> None:
        self.by_id[key.key_id] = key
        self.by_id.move_to_end(key.key_id)
        while len(self.by_id) > self.size:
            self.by_id.popitem(last=False)

    def drop_scope(self, scope: str) -> None:
        for key_id in [k for k, v in self.by_id.items() if v.scope == scope]:
            del self.by_id[key_id]


class _KeyNotCached(Exception):
    """A token's data key is not in the cache (it is loaded, then the text opened again)."""


_QUOTED_PREFIX = f'"{TOKEN_PREFIX}'
_KEY_ID_LENGTH = 22


def _open_quoted(text: str, kind: str, cache: _Cache) -> str:
    """`text` with each quoted token replaced by its plaintext (see `Codec.open_text`).

    Raises:
        _KeyNotCached: a token's key is not in `cache`.
        EncryptionError: a malformed token, or one that does not open.
    """
    pieces: list[str] = []
    keys: dict[str, DataKey] = {}
    find = text.find
    position = 0
    start = find(_QUOTED_PREFIX)
    while start >= 0:
        key_start = start + len(_QUOTED_PREFIX)
        payload_start = key_start + _KEY_ID_LENGTH + 1
        end = find('"', payload_start)
        key_id = text[key_start : payload_start - 1]
        if end < 0 or text[payload_start - 1] != "~":
            raise EncryptionError(f"a stored {kind} value holds a malformed sealed token")
        key = keys.get(key_id)
        if key is None:
            key = cache.get(key_id)
            if key is None:
                raise _KeyNotCached(key_id)
            keys[key_id] = key
        pieces.append(text[position:start])
        pieces.append(key.open(kind, text[payload_start:end]).decode())
        position = end + 1
        start = find(_QUOTED_PREFIX, position)
    pieces.append(text[position:])
    return "".join(pieces)


Executor = asyncpg.Pool | Any  # a pool or a connection: anything with fetch / fetchrow / fetchval / execute


class Codec:
    """Seals content before SQL writes and opens it after reads; the identity when `provider` is None.

    Args:
        pool: the app's pool (data keys are looked up and created on it).
        provider: the wrapping key's provider; None: encryption off.
        cache_size: unwrapped data keys kept in this process.
        search: with encryption on, what search indexes keep of sealed content: `fulltext` (a tsvector of the words,
            and vectors of memories), `vectors` (memory vectors only), `none` (nothing).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        provider: KeyProvider | None = None,
        cache_size: int = 10_000,
        search: SearchMode = "fulltext",
    ) -> None:
        """Keep the pool and provider; the cache starts empty."""
        self.pool = pool
        self.provider = provider
        self.search = search
        self._cache = _Cache(cache_size, OrderedDict())

    @property
    def enabled(self) -> bool:
        """Whether content is sealed."""
        return self.provider is not None

    def index_text(self, text: str) -> str | None:
        """The text a full-text index may keep of a value: all of it, or None (encryption on, search not `fulltext`)."""
        return text if self.provider is None or self.search == "fulltext" else None

    @property
    def embeds(self) -> bool:
        """Whether memories may keep vectors (they reveal meaning): encryption off, or search `fulltext`/`vectors`."""
        return self.provider is None or self.search != "none"

    # sealing

    async def for_session(self, conn: Executor, session_id: str) -> Sealer:
        """The sealer of a session's writes: its actor's data key, or the session's own when it has no actor.

        Raises:
            NotFound: no such session (nothing may be written to it).
        """
        if self.provider is None:
            return IDENTITY
        row = await conn.fetchrow(sql.SESSION_SCOPE, session_id)
        if row is None:
            raise NotFound(f"session {session_id!r} not found")
        return await self.for_scope(conn, row["scope"], row)

    async def for_actor(self, conn: Executor, actor_id: str) -> Sealer:
        """The sealer of an actor's memories."""
        if self.provider is None:
            return IDENTITY
        return await self.for_scope(conn, actor_scope(actor_id))

    async def for_storage_key(self, conn: Executor, key: str) -> Sealer:
        """The sealer of a storage object: its session's scope under `session/<id>/`, else the shared scope."""
        if self.provider is None:
            return IDENTITY
        if key.startswith("session/") and (session_id := key.split("/", 2)[1]):
            row = await conn.fetchrow(sql.SESSION_SCOPE, session_id)
            return await self.for_scope(conn, row["scope"] if row else session_scope(session_id), row)
        return await self.for_scope(conn, STORAGE_SCOPE)

    async def for_scope(self, conn: Executor, scope: str, row: asyncpg.Record | None = None) -> Sealer:
        """The sealer of `scope`, creating its data key on first use.

        Args:
            conn: where to look the key up (inside the caller's transaction when it has one).
            scope: the data key's scope.
            row: a row already read with the scope's `key_id`, `wrapping_key_id`, `wrapped` (or NULLs), if any.
        """
        assert self.provider is not None
        if row is None or row["key_id"] is None:
            row = await conn.fetchrow(sql.SELECT_SCOPE_KEY, scope)
        if row is None:
            material = os.urandom(32)
            wrapping_key_id, wrapped = self.provider.wrap(material)
            key_id = _b64(os.urandom(16))
            if await conn.fetchval(sql.INSERT_DATA_KEY, key_id, scope, wrapping_key_id, wrapped) is not None:
                key = DataKey(key_id, scope, material)
                self._cache.put(key)
                logger.debug("scope_kind=<%s> | created data key", scope.split(":", 1)[0])
                return Sealer(key)
            row = await conn.fetchrow(sql.SELECT_SCOPE_KEY, scope)  # a concurrent writer created it first
            assert row is not None
        return Sealer(self._key_of(row["key_id"], scope, row["wrapping_key_id"], row["wrapped"]))

    def _key_of(self, key_id: str, scope: str, wrapping_key_id: str, wrapped: bytes) -> DataKey:
        key = self._cache.get(key_id)
        if key is None:
            assert self.provider is not None
            key = DataKey(key_id, scope, self.provider.unwrap(wrapping_key_id, bytes(wrapped)))
            self._cache.put(key)
        return key

    # opening

    async def _keys(self, key_ids: set[str]) -> dict[str, DataKey]:
        found = {k: key for k in key_ids if (key := self._cache.get(k)) is not None}
        missing = key_ids - found.keys()
        if missing:
            if self.provider is None:
                raise EncryptionError("sealed data found, but encryption is not configured")
            for row in await self.pool.fetch(sql.SELECT_DATA_KEYS, list(missing)):
                found[row["key_id"]] = self._key_of(row["key_id"], row["scope"], row["wrapping_key_id"], row["wrapped"])
        if len(found) < len(key_ids):
            raise EncryptionError("sealed data whose data key was destroyed (its actor was erased)")
        return found

    async def open_text(self, text: str, kind: str) -> str:
        """JSON text read from PostgreSQL with every sealed value (a quoted token) replaced by its plaintext JSON.

        One scan with `str.find` (a restore opens 10,000 tokens in one text: regular expressions cost twice as much);
        a token of a data key not in the cache sends it back once, after its key is loaded.

        Raises:
            EncryptionError: a token whose key is gone or that does not open as `kind`.
        """
        # Encryption off: nothing is sealed (`check` refuses to start on a database holding data keys), and the scan
        # of a restore's 4 MB text costs 3 ms.
        if self.provider is None or TOKEN_PREFIX not in text:
            return text
        try:
            return _open_quoted(text, kind, self._cache)
        except _KeyNotCached:
            await self._keys({m.group(1) for m in QUOTED_TOKEN.finditer(text)})
            return _open_quoted(text, kind, self._cache)

    async def open_value(self, value: Any, kind: str) -> Any:
        """A value decoded from a `json` column: a token string is opened and decoded, anything else is as stored."""
        if not (isinstance(value, str) and value.startswith(TOKEN_PREFIX)):
            return value
        match = BARE_TOKEN.fullmatch(value)
        if match is None:
            return value
        keys = await self._keys({match.group(1)})
        return jsoncodec.loads(keys[match.group(1)].open(kind, match.group(2)))

    async def open_content(self, text: str) -> str:
        """A memory's stored content → its text."""
        value = await self.open_value(text, MEMORY)
        return str(value)

    async def open_data(self, data: bytes) -> bytes:
        """A storage value as stored → its bytes."""
        if not data.startswith(TOKEN_PREFIX.encode()):
            return data
        match = BARE_TOKEN.fullmatch(data.decode("ascii", errors="replace"))
        if match is None:
            return data
        keys = await self._keys({match.group(1)})
        return keys[match.group(1)].open(STORAGE, match.group(2))

    def resealer(self, kind: str, target: Sealer) -> Callable[[str | None], str | None]:
        """A function re-sealing every quoted token of a JSON text under `target`'s key (tokens' keys cached first).

        Used by a fork into another scope; call `preload` with the texts' key ids before.
        """

        def reseal(text: str | None) -> str | None:
            if text is None or target.key is None or TOKEN_PREFIX not in text:
                return text

            def one(m: re.Match[str]) -> str:
                key = self._cache.get(m.group(1))
                if key is None:
                    raise EncryptionError("a data key left the cache during a fork; retry")
                return f'"{target.key.seal(kind, key.open(kind, m.group(2)))}"'  # type: ignore[union-attr]

            return QUOTED_TOKEN.sub(one, text)

        return reseal

    async def preload(self, texts: Sequence[str | None]) -> None:
        """Unwrap (into the cache) the data keys of every token in `texts`."""
        ids = {m.group(1) for t in texts if t and TOKEN_PREFIX in t for m in QUOTED_TOKEN.finditer(t)}
        if ids:
            await self._keys(ids)

    # key life

    async def destroy_actor_key(self, actor_id: str) -> int:
        """Delete the actor's data key in its own committed statement: its sealed data is unreadable from then on.

        Returns:
            How many data keys were deleted (0 or 1).
        """
        scope = actor_scope(actor_id)
        deleted = int(await self.pool.fetchval(sql.DELETE_SCOPE_KEY, scope))
        self._cache.drop_scope(scope)
        return deleted

    async def check(self, conn: Executor) -> None:
        """At start-up: refuse a configuration that cannot read the database's data keys.

        Raises:
            KeyConfigurationError: sealed data but no key configured; a data key wrapped by a key not configured;
                a data key that does not open with the configured key of its id.
        """
        rows = await conn.fetch(sql.WRAPPING_KEYS)
        if not rows:
            return
        if self.provider is None:
            raise KeyConfigurationError(
                "the database holds encrypted data (data_keys): set SESSION_BACKEND_ENCRYPTION_KEY or "
                "SESSION_BACKEND_ENCRYPTION_KEY_FILE"
            )
        unknown = [r["wrapping_key_id"] for r in rows if not self.provider.knows(r["wrapping_key_id"])]
        if unknown:
            raise KeyConfigurationError(
                f"data keys are wrapped by key(s) {', '.join(unknown)}, which are not configured (the configured key "
                f"is {self.provider.current_key_id}): wrong SESSION_BACKEND_ENCRYPTION_KEY, or a rotation in progress "
                "(give the old key in SESSION_BACKEND_ENCRYPTION_OLD_KEYS)"
            )
        for r in rows:
            self.provider.unwrap(r["wrapping_key_id"], bytes(r["sample"]))
