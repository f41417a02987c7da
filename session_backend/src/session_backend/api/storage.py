"""Routes of Strands `Storage` objects (`/v1/storage`): raw bytes under keys, prefix listing, search, copy."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import HTTPException, Query, Request, Response

from ..schemas.storage import StorageCopy, StorageCount, StorageKeyPage, StorageSearchHit, StorageSearchResults
from .deps import Storage, v1_router
from .errors import PROBLEM_RESPONSES

OCTET_STREAM = "application/octet-stream"

Key = Annotated[str, Query(min_length=1, max_length=4096, description="the storage key, normalized by Strands' rules")]
Prefix = Annotated[str, Query(max_length=4096, description="keys starting with it (empty: all)")]


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        key = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except ValueError as e:  # binascii.Error, UnicodeDecodeError, and non-ASCII text
        raise HTTPException(422, "cursor is not one this service returned") from e
    if "\x00" in key:
        raise HTTPException(422, "cursor is not one this service returned")
    return key


router = v1_router("/storage", tags=["storage"], problems=(401, 413, 422, 503))


# The value is the raw request body (no JSON, no base64): a snapshot of thousands of messages crosses the wire as
# the bytes Strands wrote (bench row "snapshot save").
@router.put("/objects", status_code=204, openapi_extra={"requestBody": {"content": {OCTET_STREAM: {}}}})
async def write_object(key: Key, request: Request, store: Storage) -> Response:
    """Store the request body under `key`, overwriting any value (422 for a key that breaks Strands' rules)."""
    await store.write(key, await request.body())
    return Response(status_code=204)


@router.get(
    "/objects",
    response_class=Response,
    responses={200: {"content": {OCTET_STREAM: {}}}, 404: PROBLEM_RESPONSES[404]},
)
async def read_object(key: Key, store: Storage) -> Response:
    """The bytes under `key` as stored (404 when there are none)."""
    data = await store.read(key)
    if data is None:
        raise HTTPException(404, f"no value under storage key {key!r}")
    return Response(content=data, media_type=OCTET_STREAM)


@router.delete("/objects", status_code=204)
async def delete_object(key: Key, store: Storage) -> Response:
    """Delete the value under `key`; 204 also when there was none."""
    await store.delete(key)
    return Response(status_code=204)


@router.get("/keys", response_model=StorageKeyPage)
async def list_keys(
    store: Storage,
    prefix: Prefix = "",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(max_length=8192)] = None,
) -> StorageKeyPage:
    """Keys starting with `prefix`, in byte order, with keyset pagination."""
    after = _decode_cursor(cursor) if cursor else None
    keys, last = await store.list_keys(prefix, limit=limit, after=after)
    return StorageKeyPage(items=keys, next_cursor=_encode_cursor(last) if last is not None else None)


@router.delete("/keys", response_model=StorageCount)
async def delete_keys(store: Storage, prefix: Annotated[str, Query(min_length=1, max_length=4096)]) -> StorageCount:
    """Delete every key starting with `prefix` (non-empty) in one statement."""
    return StorageCount(count=await store.delete_prefix(prefix))


@router.post("/copy", response_model=StorageCount)
async def copy_keys(body: StorageCopy, store: Storage) -> StorageCount:
    """Copy every key under `source_prefix` to `target_prefix` + the rest of the key, server-side, in one statement.

    Both prefixes end with `/` and must not overlap; existing target keys are overwritten.
    """
    return StorageCount(count=await store.copy_prefix(body.source_prefix, body.target_prefix))


@router.get("/search", response_model=StorageSearchResults)
async def search(
    store: Storage,
    query: Annotated[str, Query(max_length=4096)],
    prefix: Prefix = "",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> StorageSearchResults:
    """Values under `prefix` ranked against `query` by PostgreSQL full-text search, best first.

    A value matches when any query term (stop words dropped, stemmed) is in its text or in its key relative to
    `prefix` without the extension.
    """
    hits = await store.search(query, prefix=prefix, limit=limit)
    return StorageSearchResults(items=[StorageSearchHit(key=k, score=s) for k, s in hits])
