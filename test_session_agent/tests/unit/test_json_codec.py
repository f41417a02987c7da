"""The lossless JSON codec: `service_kit.jsoncodec` and the client's copy `test_session_agent._json` agree."""

from __future__ import annotations

import inspect
import math
from typing import Any

import pytest

from service_kit import jsoncodec
from test_session_agent import _json

VALUES: list[Any] = [
    {"nul": "a\x00b", "big": math.factorial(25), "neg": -(2**80), "u64": 2**64 - 1, "float": 1.5e25, "tenth": 0.1},
    ["\u2028\u2029\ufeff", "👩\u200d👩\u200d👧", "𝄞", "שלום", 1.0, True, None],
    {"digits in text": "1234567890123456789012", "small": 3},
]


@pytest.mark.parametrize("codec", [jsoncodec, _json])
@pytest.mark.parametrize("value", VALUES)
def test_values_round_trip_exactly(codec: Any, value: Any) -> None:
    text = codec.dumps(value)
    back = codec.loads(text)
    assert back == value and repr(back) == repr(value)  # an int stays an int, a float a float


@pytest.mark.parametrize("codec", [jsoncodec, _json])
@pytest.mark.parametrize(
    "text", [b"[NaN, 12345678901234567890123]", b"[1e400, 12345678901234567890123]", b"[NaN]", b"{"]
)
def test_not_json_is_refused(codec: Any, text: bytes) -> None:
    with pytest.raises(ValueError):
        codec.loads(text)


@pytest.mark.parametrize("codec", [jsoncodec, _json])
@pytest.mark.parametrize("value", [{"x": "\ud800"}, {1: 2}, {"big": 2**70, "bad": "\udc00"}])
def test_unstorable_values_are_a_value_error(codec: Any, value: Any) -> None:
    with pytest.raises(ValueError):
        codec.dumps(value)


def test_the_client_copy_is_the_same_code() -> None:
    ours, theirs = inspect.getsource(jsoncodec), inspect.getsource(_json)
    assert ours.split('"""', 2)[2] == theirs.split('"""', 2)[2]  # all but the module docstring
