"""The JSON codec of stored values: orjson's speed, with the standard `json` module where orjson would lose data.

Every JSON value Strands can produce is kept exactly: strings with U+0000, integers of any size, floats by value (as
`FileSessionManager`, which writes them with the standard module). orjson refuses integers beyond 64 bits when
encoding (the standard module then encodes) and reads them as floats when decoding (text holding a run of 19 or more
digits, which any such integer does, is read by the standard module instead).
The client library keeps its own copy of these two functions (`test_session_agent._json`), as it does not install
this package.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

# 2**63 has 19 digits: orjson reads integers from 20 digits on (beyond uint64) as floats. A run of 19 digits anywhere
# (also inside a string or a float) sends the text to the exact parser; that is only slower, never wrong. The scan maps
# every digit to "0" and anything else to a space, then looks for 19 zeros: a tenth of orjson's parse of the same
# text (a regular expression took longer than the parse).
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
_LONG_RUN = b"0" * 19


def dumps(value: Any) -> bytes:
    """Encode `value` as compact UTF-8 JSON.

    Args:
        value: dicts with string keys, lists, strings, ints of any size, finite floats, bools, None.

    Returns:
        The JSON text as bytes.

    Raises:
        ValueError: `value` is not JSON (lone surrogates, other types, non-string keys); NaN and infinities are
            encoded as null, as orjson does.
    """
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as e:
        if "64-bit" not in str(e):  # only an integer beyond 64 bits goes on; anything else is not JSON
            raise ValueError(f"not storable as JSON: {e}") from e
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as fallback:  # UnicodeEncodeError is a ValueError
            raise ValueError(f"not storable as JSON: {fallback}") from fallback


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode JSON text, keeping integers of any size exactly.

    Raises:
        ValueError: the text is not strict JSON (also NaN, Infinity, 1e400; both parsers' errors are ValueErrors).
    """
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if _LONG_RUN in raw.translate(_DIGITS_AS_ZEROS):
        return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    return orjson.loads(raw)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond the range of a double")
    return value
