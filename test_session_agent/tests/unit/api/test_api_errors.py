"""test_session_agent.api.errors: client errors → statuses, and the service's answers when the backend is down."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from strands.types.exceptions import SessionException

from test_session_agent.api.app import create_app
from test_session_agent.api.errors import status_of
from test_session_agent.exceptions import (
    BackendRequestError,
    BackendUnavailableError,
    SessionBusyError,
    SessionConflictError,
    SessionNotFoundError,
    TurnNotStoredError,
    TurnOutcomeUnknownError,
)
from test_session_agent.models.scripted import ScriptedModel
from test_session_agent.settings import AgentSettings


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (SessionNotFoundError("x"), 404),
        (SessionBusyError("x"), 409),
        (SessionConflictError("x"), 409),
        (BackendUnavailableError("x"), 503),
        (TurnNotStoredError("x"), 503),
        (TurnOutcomeUnknownError("x"), 503),
        (BackendRequestError("x", 422), 422),
        (BackendRequestError("x", 400), 502),
        (SessionException("x"), 502),
        (RuntimeError("x"), 500),
    ],
)
def test_status_of(exc: BaseException, status: int) -> None:
    assert status_of(exc)[0] == status


@pytest.fixture(scope="module")
def service() -> Iterator[TestClient]:
    """The service with no backend listening (port 9 refuses connections)."""
    settings = AgentSettings.model_validate(
        {"backend_url": "http://127.0.0.1:9", "model_provider": "scripted", "max_prompt_chars": 10}
    )
    with TestClient(create_app(settings, model=ScriptedModel())) as client:
        yield client


def test_backend_down_is_503_with_retry_after(service: TestClient) -> None:
    r = service.get("/sessions/s/history")
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["title"] == "Service Unavailable"


def test_streaming_failure_is_an_error_event(service: TestClient) -> None:
    r = service.post("/process-streaming", json={"prompt": "hi", "session_id": "s"})
    assert r.status_code == 200
    events = [line.removeprefix("data: ") for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[0] == '{"type":"start","session_id":"s"}'
    assert events[-1].startswith('{"type":"error","status":503,')


@pytest.mark.parametrize(
    "body",
    [{"prompt": "x" * 11}, {"prompt": " "}, {"prompt": "hi", "session_id": ".."}, {"prompt": "hi", "extra": 1}],
)
def test_bad_requests_are_422_before_any_backend_call(service: TestClient, body: dict[str, object]) -> None:
    r = service.post("/process", json=body)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


def test_health_needs_no_backend(service: TestClient) -> None:
    assert service.get("/health").json() == {
        "status": "ok",
        "model_provider": "scripted",
        "access_control": False,
    }
