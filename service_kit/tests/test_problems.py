"""service_kit.problems.BodySizeLimit: 413 on a declared or streamed body over the limit, before the route."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from service_kit.problems import PROBLEM_HANDLERS, BodySizeLimit

LIMIT = 1024


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = FastAPI(exception_handlers=PROBLEM_HANDLERS)
    app.add_middleware(BodySizeLimit, max_bytes=LIMIT)

    @app.post("/echo")
    async def echo(request: Request) -> int:
        return len(await request.body())

    with TestClient(app) as c:
        yield c


def assert_413(r: object) -> None:
    assert getattr(r, "status_code", None) == 413
    assert r.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    assert r.json() == {  # type: ignore[attr-defined]
        "type": "about:blank",
        "title": "Content Too Large",
        "status": 413,
        "detail": f"request body is larger than {LIMIT} bytes",
    }


def test_body_at_the_limit_passes(client: TestClient) -> None:
    r = client.post("/echo", content=b"x" * LIMIT)
    assert r.status_code == 200 and r.json() == LIMIT


def test_declared_length_over_the_limit_is_413(client: TestClient) -> None:
    assert_413(client.post("/echo", content=b"x" * (LIMIT + 1)))


def test_streamed_body_over_the_limit_is_413(client: TestClient) -> None:
    # A generator body is sent chunked, without Content-Length: the limit is counted as it streams in.
    def chunks() -> Iterator[bytes]:
        for _ in range(4):
            yield b"x" * (LIMIT // 2)

    assert_413(client.post("/echo", content=chunks()))


def test_bad_content_length_is_413(client: TestClient) -> None:
    assert_413(client.post("/echo", content=b"{}", headers={"Content-Length": "abc"}))
