"""test_session_agent._http: client options, retry predicates, and the mapping of backend answers to the contract."""

from __future__ import annotations

import httpx
import pytest

from test_session_agent._http import (
    backend_client,
    checked,
    client_options,
    connect_failure,
    problem_detail,
    retryable,
    segment,
)
from test_session_agent.exceptions import (
    BackendRequestError,
    BackendUnavailableError,
    SessionConflictError,
    SessionNotFoundError,
)

REQUEST = httpx.Request("GET", "http://backend/v1/sessions/s")


def answer(status: int, body: bytes = b"") -> httpx.Response:
    return httpx.Response(status, content=body, request=REQUEST)


def status_error(status: int) -> httpx.HTTPStatusError:
    return httpx.HTTPStatusError("x", request=REQUEST, response=answer(status))


def test_client_options() -> None:
    options = client_options("http://backend:8001/", "k", 5.0, max_connections=10)
    assert options["base_url"] == "http://backend:8001"
    assert options["headers"] == {"Authorization": "Bearer k"}
    assert options["verify"] is False
    assert options["limits"].max_keepalive_connections == 5
    assert client_options("https://backend", None)["headers"] == {}
    assert client_options("https://backend", None)["verify"] is True


def test_backend_client_kinds() -> None:
    with backend_client("http://backend", "k") as client:
        assert isinstance(client, httpx.Client) and client.headers["Authorization"] == "Bearer k"
    assert isinstance(backend_client("http://backend", asynchronous=True), httpx.AsyncClient)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (status_error(502), True),
        (status_error(503), True),
        (status_error(504), True),
        (status_error(500), False),
        (status_error(404), False),
        (ValueError("x"), False),
    ],
)
def test_retryable(exc: BaseException, expected: bool) -> None:
    assert retryable(exc) is expected


def test_connect_failure_only_when_nothing_was_sent() -> None:
    assert connect_failure(httpx.ConnectError("refused"))
    assert connect_failure(httpx.ConnectTimeout("slow"))
    assert not connect_failure(httpx.ReadTimeout("slow"))
    assert not connect_failure(status_error(503))


def test_segment_encodes_one_path_segment() -> None:
    assert segment("a/b c:@+=") == "a%2Fb%20c%3A%40%2B%3D"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"title": "Conflict", "detail": "taken"}', "taken"),
        (b'{"title": "Conflict"}', "Conflict"),
        (b"<html>bad gateway</html>", "<html>bad gateway</html>"),
        (b"[1, 2]", "[1, 2]"),
    ],
)
def test_problem_detail(body: bytes, detail: str) -> None:
    assert problem_detail(answer(400, body)) == detail


def test_checked_passes_success_and_optional_absence() -> None:
    ok = answer(200)
    assert checked("GET", "/p", ok) is ok
    assert checked("GET", "/p", answer(404), missing_ok=True) is None


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, SessionNotFoundError),
        (409, SessionConflictError),
        (412, SessionConflictError),
        (500, BackendUnavailableError),
        (503, BackendUnavailableError),
        (400, BackendRequestError),
        (422, BackendRequestError),
    ],
)
def test_checked_maps_refusals(status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        checked("PUT", "/v1/sessions/s", answer(status, b'{"detail": "why"}'))
    assert type(info.value) is error
    assert "PUT /v1/sessions/s" in str(info.value) and "why" in str(info.value)
    if isinstance(info.value, BackendRequestError):
        assert info.value.status == status


def test_idle_connections_are_dropped_before_the_server_closes_them() -> None:
    """uvicorn closes an idle keep-alive connection after 5 s; reusing one the server is closing resets the request."""
    limits = client_options("http://backend:8001", None)["limits"]
    assert limits.keepalive_expiry is not None and limits.keepalive_expiry < 5
