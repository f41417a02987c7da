"""HTTP routes of Strands `Storage` objects (`/v1/storage`): raw bytes under keys, prefix listing, search, copy."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from .errors import PROBLEM_RESPONSES
from .jsonbody import StrictJSONRoute
from .routes import require_api_key
from .storage_store import StorageStore

OCTET_STREAM = "application/octet-stream"


async def get_storage_store(request: Request) -> StorageStore:
    """The storage store created in the app's lifespan."""
    store: StorageStore = request.app.state.storage_store
    return store


Store = Annotated[StorageStore, Depends(get_storage_store)]
Key = Annotated[str, Query(min_length=1, max_length=4096, description="the storage key, normalized by Strands' rules")]
Prefix = Annotated[str, Query(max_length=4096, description="keys starting with it (empty: all)")]


class StorageKeyPage(BaseModel):
    """One page of keys in byte order."""

    items: list[str]
    next_cursor: str | None = None


class StorageSearchHit(BaseModel):
    """A key whose value matched a search, with its rank (higher is better)."""

    key: str
    score: float


class StorageSearchResults(BaseModel):
    """Search hits, best first."""

    items: list[StorageSearchHit]


class StorageCopy(BaseModel):
    """Copy every key under `source_prefix` to the same key under `target_prefix`."""

    model_config = ConfigDict(extra="forbid")

    source_prefix: str = Field(min_length=2, max_length=4096)
    target_prefix: str = Field(min_length=2, max_length=4096)


class StorageCount(BaseModel):
    """How many keys an operation touched."""

    count: int


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


_errors: dict[int | str, dict[str, Any]] = {code: PROBLEM_RESPONSES[code] for code in (401, 413, 422, 503)}

router = APIRouter(
    prefix="/v1/storage",
    tags=["storage"],
    dependencies=[Depends(require_api_key)],
    responses=_errors,
    route_class=StrictJSONRoute,
)


# The value is the raw request body (no JSON, no base64): a snapshot of thousands of messages crosses the wire as
# the bytes Strands wrote (bench row "snapshot save").
@router.put("/objects", status_code=204, openapi_extra={"requestBody": {"content": {OCTET_STREAM: {}}}})
async def write_object(key: Key, request: Request, store: Store) -> Response:
    """Store the request body under `key`, overwriting any value (422 for a key that breaks Strands' rules)."""
    await store.write(key, await request.body())
    return Response(status_code=204)


@router.get(
    "/objects",
    response_class=Response,
    responses={200: {"content": {OCTET_STREAM: {}}}, 404: PROBLEM_RESPONSES[404]},
)
async def read_object(key: Key, store: Store) -> Response:
    """The bytes under `key` as stored (404 when there are none)."""
    data = await store.read(key)
    if data is None:
        raise HTTPException(404, f"no value under storage key {key!r}")
    return Response(content=data, media_type=OCTET_STREAM)


@router.delete("/objects", status_code=204)
async def delete_object(key: Key, store: Store) -> Response:
    """Delete the value under `key`; 204 also when there was none."""
    await store.delete(key)
    return Response(status_code=204)


@router.get("/keys", response_model=StorageKeyPage)
async def list_keys(
    store: Store,
    prefix: Prefix = "",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(max_length=8192)] = None,
) -> StorageKeyPage:
    """Keys starting with `prefix`, in byte order, with keyset pagination."""
    after = _decode_cursor(cursor) if cursor else None
    keys, last = await store.list_keys(prefix, limit=limit, after=after)
    return StorageKeyPage(items=keys, next_cursor=_encode_cursor(last) if last is not None else None)


@router.delete("/keys", response_model=StorageCount)
async def delete_keys(store: Store, prefix: Annotated[str, Query(min_length=1, max_length=4096)]) -> StorageCount:
    """Delete every key starting with `prefix` (non-empty) in one statement."""
    return StorageCount(count=await store.delete_prefix(prefix))


@router.post("/copy", response_model=StorageCount)
async def copy_keys(body: StorageCopy, store: Store) -> StorageCount:
    """Copy every key under `source_prefix` to `target_prefix` + the rest of the key, server-side, in one statement.

    Both prefixes end with `/` and must not overlap; existing target keys are overwritten.
    """
    return StorageCount(count=await store.copy_prefix(body.source_prefix, body.target_prefix))


@router.get("/search", response_model=StorageSearchResults)
async def search(
    store: Store,
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
