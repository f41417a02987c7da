"""Field types every resource's bodies share: identifiers, timestamps, tokens, JSON objects, storable text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from service_kit import jsoncodec
from service_kit.identifiers import IDENTIFIER_PATTERN as IDENTIFIER_PATTERN
from service_kit.identifiers import Identifier as Identifier


def storable_timestamp(value: datetime) -> datetime:
    """Return `value` in UTC when PostgreSQL stores it as that instant.

    Raises:
        ValueError: it falls outside years 1 to 9999 once in UTC, or it is `datetime.min`/`datetime.max`, which the
            driver would store as -infinity/infinity (read back as null).
    """
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as e:
        raise ValueError("timestamp is outside years 1 to 9999 in UTC") from e
    naive = utc.replace(tzinfo=None)
    if naive in (datetime.min, datetime.max):
        raise ValueError("timestamp must lie strictly between years 1 and 9999 (the extremes mean infinity)")
    return utc


Timestamp = Annotated[datetime, AfterValidator(storable_timestamp)]
"""An ISO 8601 instant (no offset means UTC), strictly inside years 1 to 9999 in UTC."""

MAX_MESSAGE_ID = 2_147_483_647
MessageId = Annotated[int, Field(ge=0, le=MAX_MESSAGE_ID)]
JsonObject = dict[str, Any]


SEALED_PREFIX = "~sb1~"
"""Start of a value sealed by encryption at rest (`db/encryption.py`). Reserved: a clear string the API stores beside
sealed values (a token, memory metadata) may not start with it, or opening a response would take it for one."""


def not_sealed_looking(value: Any) -> Any:
    """Return `value` (parsed JSON) when none of its strings or object keys starts with `SEALED_PREFIX`.

    Raises:
        ValueError: one does.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item.startswith(SEALED_PREFIX):
                raise ValueError(f"strings starting with {SEALED_PREFIX!r} are reserved for sealed values")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


Token = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,256}$"), AfterValidator(not_sealed_looking)]
"""1 to 256 printable ASCII characters (no spaces, not starting with `SEALED_PREFIX`): a lease owner, a turn id or an
Idempotency-Key."""

MAX_TTL_SECONDS = 10 * 365 * 24 * 3600
"""Longest lifetime a client may give a session or an active agent (ten years, in seconds)."""


class Body(BaseModel):
    """Base of request and response bodies: unknown fields are ignored, fields are read by name or alias."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def utf8_text(value: str) -> str:
    """Return `value` when it encodes as UTF-8 (no lone surrogates).

    Raises:
        ValueError: it does not.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from e
    return value


def json_size(value: Any) -> int:
    """Bytes of `value` as the stored-value codec (`service_kit.jsoncodec`) encodes it; integers of any size pass.

    Raises:
        ValueError: the codec cannot encode it (lone surrogates, NaN).
    """
    return len(jsoncodec.dumps(value))
