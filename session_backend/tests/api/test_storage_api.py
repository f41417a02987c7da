"""The `/v1/storage` routes (Strands `Storage` objects) with their success and error statuses, on a real PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from session_backend.db.storage import MAX_KEY_BYTES, check_key, check_prefix, searchable_text

PROBLEM = "application/problem+json"
OBJECTS = "/v1/storage/objects"


def scope() -> str:
    return f"t-{uuid.uuid4().hex[:10]}/"


@pytest.mark.parametrize("key", ["", "/a", "a/", "a//b", "a/../b", "..", "a\\b", "a\x00b", "x" * (MAX_KEY_BYTES + 1)])
def test_check_key_refuses_what_strands_would_not_store(key: str) -> None:
    with pytest.raises(Exception) as info:
        check_key(key)
    assert getattr(info.value, "status", None) == 422


@pytest.mark.parametrize("key", ["a", "a/b.json", "a/./b", "a/...b", "é/ü", "snapshot_latest.json"])
def test_check_key_accepts_normalized_keys(key: str) -> None:
    assert check_key(key) == key


def test_check_prefix_allows_empty_and_trailing_slash() -> None:
    assert check_prefix("") == ""
    assert check_prefix("a/b/") == "a/b/"


def test_searchable_text_never_fails_on_invalid_utf8() -> None:
    assert "caf" in searchable_text(b"caf\xff\xfe\x00 dark/mode.md")
    assert "\x00" not in searchable_text(b"\x00\x00")


@pytest.mark.integration
class TestStorageRoutes:
    def test_write_read_overwrite_delete(self, client: TestClient) -> None:
        key = f"{scope()}a/value.bin"
        payload = bytes(range(256)) * 3
        r = client.put(OBJECTS, params={"key": key}, content=payload)
        assert r.status_code == 204, r.text
        r = client.get(OBJECTS, params={"key": key})
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.content == payload
        assert client.put(OBJECTS, params={"key": key}, content=b"second").status_code == 204
        assert client.get(OBJECTS, params={"key": key}).content == b"second"
        assert client.delete(OBJECTS, params={"key": key}).status_code == 204
        r = client.get(OBJECTS, params={"key": key})
        assert r.status_code == 404
        assert r.headers["content-type"] == PROBLEM
        # Deleting what is absent is a no-op.
        assert client.delete(OBJECTS, params={"key": key}).status_code == 204

    def test_empty_value_and_odd_keys_round_trip(self, client: TestClient) -> None:
        base = scope()
        for key in (f"{base}empty", f"{base}sp ace/q?x=1&y#frag", f"{base}é/ü/漢字", f"{base}a/./b"):
            body = b"" if key.endswith("empty") else key.encode()
            assert client.put(OBJECTS, params={"key": key}, content=body).status_code == 204
            r = client.get(OBJECTS, params={"key": key})
            assert (r.status_code, r.content) == (200, body)

    @pytest.mark.parametrize("key", ["/lead", "trail/", "a//b", "a/../b", "a\\b", "x" * (MAX_KEY_BYTES + 1)])
    def test_bad_key_is_422_and_nothing_is_stored(self, client: TestClient, key: str) -> None:
        r = client.put(OBJECTS, params={"key": key}, content=b"x")
        assert r.status_code == 422
        assert r.headers["content-type"] == PROBLEM
        assert client.get(OBJECTS, params={"key": key}).status_code == 422
        assert client.delete(OBJECTS, params={"key": key}).status_code == 422

    def test_missing_key_parameter_is_422(self, client: TestClient) -> None:
        assert client.put(OBJECTS, content=b"x").status_code == 422
        assert client.get(OBJECTS).status_code == 422

    def test_nul_in_key_is_422(self, client: TestClient) -> None:
        assert client.put(f"{OBJECTS}?key=a%00b", content=b"x").status_code == 422

    def test_body_over_limit_is_413(self, client: TestClient) -> None:
        key = f"{scope()}big"
        r = client.put(OBJECTS, params={"key": key}, content=b"x" * (64 * 1024 + 1))
        assert r.status_code == 413
        assert client.get(OBJECTS, params={"key": key}).status_code == 404

    def test_list_is_sorted_by_bytes_and_paginated(self, client: TestClient) -> None:
        base = scope()
        names = ["b/2", "a/1", "c/3", "B", "a/10", "é", "z", "a-1"]
        for name in names:
            assert client.put(OBJECTS, params={"key": base + name}, content=b"").status_code == 204
        r = client.get("/v1/storage/keys", params={"prefix": base})
        assert r.status_code == 200
        assert r.json() == {"items": sorted(base + n for n in names), "next_cursor": None}
        pages: list[str] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"prefix": base, "limit": 3}
            if cursor:
                params["cursor"] = cursor
            body = client.get("/v1/storage/keys", params=params).json()
            pages += body["items"]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert pages == sorted(base + n for n in names)
        assert client.get("/v1/storage/keys", params={"prefix": base + "a/"}).json()["items"] == [
            base + "a/1",
            base + "a/10",
        ]
        assert client.get("/v1/storage/keys", params={"prefix": "/x"}).status_code == 422
        assert client.get("/v1/storage/keys", params={"cursor": "!!"}).status_code == 422
        assert client.get("/v1/storage/keys", params={"cursor": "é"}).status_code == 422
        assert client.get("/v1/storage/keys", params={"cursor": "AA"}).status_code == 422  # a NUL key

    def test_search_ranks_and_scopes(self, client: TestClient) -> None:
        base = scope()
        client.put(OBJECTS, params={"key": base + "dark-mode.md"}, content=b"enable dark mode in settings")
        client.put(OBJECTS, params={"key": base + "deploy.md"}, content=b"deploy to production")
        client.put(OBJECTS, params={"key": base + "binary.bin"}, content=b"\xff\xfe dark \x00")
        client.put(OBJECTS, params={"key": "elsewhere/" + base + "x.md"}, content=b"dark mode")
        r = client.get("/v1/storage/search", params={"query": "dark mode", "prefix": base})
        assert r.status_code == 200
        hits = r.json()["items"]
        assert [h["key"] for h in hits] == [base + "dark-mode.md", base + "binary.bin"]
        assert hits[0]["score"] > hits[1]["score"] > 0
        # Stop words alone match nothing; the key relative to the prefix counts as text.
        assert client.get("/v1/storage/search", params={"query": "the of", "prefix": base}).json()["items"] == []
        hits = client.get("/v1/storage/search", params={"query": "deploy", "prefix": base}).json()["items"]
        assert [h["key"] for h in hits] == [base + "deploy.md"]

    def test_copy_and_delete_by_prefix(self, client: TestClient) -> None:
        src, dst = scope(), scope()
        for name in ("a", "b/c"):
            client.put(OBJECTS, params={"key": src + name}, content=name.encode())
        r = client.post("/v1/storage/copy", json={"source_prefix": src, "target_prefix": dst})
        assert (r.status_code, r.json()) == (200, {"count": 2})
        assert client.get(OBJECTS, params={"key": dst + "b/c"}).content == b"b/c"
        bad = client.post("/v1/storage/copy", json={"source_prefix": src, "target_prefix": src + "x/"})
        assert bad.status_code == 422
        assert client.post("/v1/storage/copy", json={"source_prefix": "a", "target_prefix": "b/"}).status_code == 422
        r = client.delete("/v1/storage/keys", params={"prefix": src})
        assert (r.status_code, r.json()) == (200, {"count": 2})
        assert client.get("/v1/storage/keys", params={"prefix": src}).json()["items"] == []
        assert client.get("/v1/storage/keys", params={"prefix": dst}).json()["items"] == [dst + "a", dst + "b/c"]

    def test_a_session_s_objects_live_and_die_with_its_row(self, client: TestClient) -> None:
        """Objects under `session/<id>/` go with the session's delete, and a new session under that id starts empty
        (objects left by an earlier life are cleared); a neighbour id sharing the prefix text keeps its objects."""
        sid = f"s-{uuid.uuid4().hex[:10]}"
        mine, neighbour = f"session/{sid}/scopes/agent/a/snapshots/latest", f"session/{sid}0/x"
        for key in (mine, neighbour):
            assert client.put(OBJECTS, params={"key": key}, content=b"old life").status_code == 204
        assert client.post("/v1/sessions", json={"session_id": sid, "session_type": "AGENT"}).status_code == 201
        assert client.get(OBJECTS, params={"key": mine}).status_code == 404
        assert client.put(OBJECTS, params={"key": mine}, content=b"snapshot").status_code == 204
        assert client.delete(f"/v1/sessions/{sid}").status_code == 204
        assert client.get(OBJECTS, params={"key": mine}).status_code == 404
        assert client.get(OBJECTS, params={"key": neighbour}).content == b"old life"


@pytest.mark.integration
def test_storage_routes_require_the_api_key(make_settings) -> None:  # type: ignore[no-untyped-def]
    from session_backend.app import create_app

    with TestClient(create_app(make_settings(api_key="s3cret"))) as c:
        assert c.get(OBJECTS, params={"key": "a"}).status_code == 401
        r = c.get(OBJECTS, params={"key": "a"}, headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 404
