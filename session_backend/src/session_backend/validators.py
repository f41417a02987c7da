"""Checks that a value the request schema accepts can also be stored.

Text must be valid UTF-8 and JSON encodable by orjson (the jsonb codec): without these checks a lone surrogate or a
70-digit integer would fail in the driver, as a 500.
"""

from __future__ import annotations

from typing import Any

import orjson


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
    """Bytes of `value` as the jsonb codec encodes it.

    Raises:
        ValueError: the codec cannot encode it (integers beyond 64 bits, lone surrogates).
    """
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError as e:
        raise ValueError(f"not storable as JSON: {e}") from e
