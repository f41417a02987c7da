"""The pure helpers of session_backend.api.sessions: keyset cursors and If-Match parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import HTTPException

from session_backend.api.sessions import _decode_cursor, _encode_cursor, _parse_if_match


def test_cursor_round_trip() -> None:
    key = (datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), "s:1@x")
    cursor = _encode_cursor(key, "updated_at")
    assert "=" not in cursor
    assert _decode_cursor(cursor, "updated_at") == key
    with pytest.raises(HTTPException) as info:
        _decode_cursor(cursor, "created_at")
    assert info.value.status_code == 422


def test_cursor_without_order_means_created_at() -> None:
    cursor = "WyIyMDI1LTAxLTAyVDAzOjA0OjA1KzAwOjAwIiwiYSJd"  # ["2025-01-02T03:04:05+00:00","a"], issued before order_by
    assert _decode_cursor(cursor, "created_at") == (datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), "a")


@pytest.mark.parametrize("cursor", ["", "not base64!", "bnVsbA", "WzEsMiwzXQ"])  # "", garbage, null, [1,2,3]
def test_foreign_cursor_is_422(cursor: str) -> None:
    with pytest.raises(HTTPException) as info:
        _decode_cursor(cursor, "created_at")
    assert info.value.status_code == 422


@pytest.mark.parametrize(("header", "version"), [(None, None), ("*", None), ('"3"', 3), ('W/"3"', 3), (" 12 ", 12)])
def test_if_match(header: str | None, version: int | None) -> None:
    assert _parse_if_match(header) == version


@pytest.mark.parametrize("header", ['"abc"', "", '"3", "4"'])
def test_if_match_not_a_version_is_422(header: str) -> None:
    with pytest.raises(HTTPException) as info:
        _parse_if_match(header)
    assert info.value.status_code == 422
