"""session_backend.db.errors and api.errors: SQLSTATE → domain error, and every error → its problem-details response."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from service_kit.problems import problem
from session_backend.api.errors import EXCEPTION_HANDLERS
from session_backend.db.errors import (
    AlreadyExists,
    Conflict,
    LeaseNotHeld,
    NotFound,
    PreconditionFailed,
    SessionBusy,
    StoreError,
    from_postgres,
)


@pytest.mark.parametrize(
    ("sqlstate", "error_type"),
    [("SB404", NotFound), ("SB409", Conflict), ("SB412", PreconditionFailed), ("SB423", LeaseNotHeld)],
)
def test_backend_sqlstates_become_domain_errors(sqlstate: str, error_type: type[StoreError]) -> None:
    error = from_postgres(asyncpg.PostgresError.new({"C": sqlstate, "M": "agent a not found", "S": "ERROR"}))
    assert type(error) is error_type
    assert error.detail == "agent a not found"


def test_other_sqlstates_are_not_domain_errors() -> None:
    assert from_postgres(asyncpg.PostgresError.new({"C": "23505", "M": "duplicate", "S": "ERROR"})) is None


def test_problem_body_and_titles() -> None:
    response = problem(412, "stale", headers={"X-A": "1"})
    assert response.media_type == "application/problem+json"
    assert response.headers["X-A"] == "1"
    assert response.body == b'{"type":"about:blank","title":"Precondition Failed","status":412,"detail":"stale"}'
    # RFC 9110's name, not Python's older "Request Entity Too Large"
    assert b'"title":"Content Too Large"' in problem(413).body


class Body(BaseModel):
    n: int


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    raised: dict[str, Exception] = {
        "not-found": NotFound("session 's' not found"),
        "exists": AlreadyExists("session 's' already exists"),
        "stale": PreconditionFailed("agent 'a' is at version 3, not 2"),
        "busy": SessionBusy("session 's' is busy", retry_after=2.2),
        "fenced": LeaseNotHeld("the lease on session 's' is not held by o"),
        "down": ConnectionRefusedError("connection refused"),
        "data": asyncpg.exceptions.UntranslatableCharacterError("unsupported Unicode escape sequence"),
    }
    app = FastAPI(exception_handlers=EXCEPTION_HANDLERS)

    @app.get("/raise/{name}")
    async def raise_(name: str) -> None:
        raise raised[name]

    @app.post("/validate")
    async def validate(body: Body) -> int:
        return body.n

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize(
    ("name", "status", "retry_after"),
    [
        ("not-found", 404, None),
        ("exists", 409, None),
        ("stale", 412, None),
        ("busy", 409, "3"),
        ("fenced", 409, None),
        ("down", 503, "1"),
        ("data", 422, None),
    ],
)
def test_errors_are_problem_responses(client: TestClient, name: str, status: int, retry_after: str | None) -> None:
    r = client.get(f"/raise/{name}")
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers.get("Retry-After") == retry_after
    body = r.json()
    assert body["status"] == status and body["type"] == "about:blank" and body["detail"]


def test_validation_error_names_the_field(client: TestClient) -> None:
    r = client.post("/validate", json={"n": "x"})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("body.n: ")


def test_unknown_route_is_a_problem(client: TestClient) -> None:
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "Not Found",
    }
