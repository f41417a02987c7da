"""The hot path's number screen: `has_unusual_number` is exactly `_UNUSUAL_NUMBER.search`, only cheaper."""

from __future__ import annotations

import random

import pytest

from session_backend.hotpath import _UNUSUAL_NUMBER, has_unusual_number


@pytest.mark.parametrize(
    ("body", "unusual"),
    [
        (b'{"message_id": 12, "text": "2026-11-24T01:00:00Z"}', False),
        (b'{"n": 1234567890123456789}', True),  # 19 digits: beyond what the strict parser and orjson agree on
        (b'{"n": 123456789012345678}', False),
        (b'{"x": 1e400}', True),
        (b'{"x": 1E-308}', True),
        (b'{"x": 1e+99}', False),
        (b'{"text": "see e123 in the manual"}', True),  # inside a string: only costs the fast lane
        (b"", False),
    ],
)
def test_examples(body: bytes, unusual: bool) -> None:
    assert has_unusual_number(body) is unusual
    assert bool(_UNUSUAL_NUMBER.search(body)) is unusual


def test_agrees_with_the_regex_on_random_bodies() -> None:
    rng = random.Random(15)
    alphabet = b'0123456789eE+-. ax"{}:,'
    for _ in range(20_000):
        body = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 48)))
        assert has_unusual_number(body) == bool(_UNUSUAL_NUMBER.search(body)), body
