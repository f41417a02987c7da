"""The agent service's endpoints (scripted model, real backend process, real PostgreSQL), SSE framing included."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from test_session_agent.api.app import create_app
from test_session_agent.models.scripted import ScriptedModel
from test_session_agent.settings import AgentSettings

pytestmark = pytest.mark.integration


def sse_events(client: TestClient, body: dict[str, Any]) -> tuple[int, str, list[dict[str, Any]]]:
    with client.stream("POST", "/process-streaming", json=body) as r:
        raw = "".join(r.iter_text())
        status, ctype = r.status_code, r.headers.get("content-type", "")
    events = []
    for frame in raw.replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].strip() for line in frame.split("\n") if line.startswith("data:")]
        if data:
            events.append(orjson.loads("\n".join(data)))
    return status, ctype, events


def test_health(service: TestClient) -> None:
    r = service.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_process_new_session_then_continue(service: TestClient) -> None:
    r = service.post("/process", json={"prompt": "Hello, my name is Alice"})
    assert r.status_code == 200, r.text
    body = r.json()
    sid = body["session_id"]
    assert body["status"]["session_managed"] is True and body["status"]["conversation_length"] == 2
    assert "you said: Hello, my name is Alice" in body["response"]

    r = service.post("/process", json={"prompt": "What is my name?", "session_id": sid})
    body = r.json()
    assert body["session_id"] == sid and body["status"]["conversation_length"] == 4
    assert "first: Hello, my name is Alice" in body["response"]


def test_history_list_delete(service: TestClient) -> None:
    actor = f"actor-{uuid.uuid4().hex[:6]}"
    sid = f"svc-{uuid.uuid4().hex[:8]}"
    service.post("/process", json={"prompt": "one", "session_id": sid, "actor_id": actor})
    service.post("/process", json={"prompt": "two", "session_id": sid})
    r = service.get(f"/sessions/{sid}/history")
    assert r.status_code == 200
    msgs = r.json()["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert [m["message_id"] for m in msgs] == [0, 1, 2, 3]
    assert msgs[0]["content"] == [{"text": "one"}]

    listed = service.get("/sessions", params={"actor_id": actor}).json()
    assert [s["session_id"] for s in listed["items"]] == [sid] and listed["next_cursor"] is None

    assert service.delete(f"/sessions/{sid}").status_code == 204
    assert service.get(f"/sessions/{sid}/history").status_code == 404
    assert service.delete(f"/sessions/{sid}").status_code == 404
    # a new turn on the deleted id starts from nothing
    r = service.post("/process", json={"prompt": "again", "session_id": sid})
    assert r.json()["status"]["conversation_length"] == 2


def test_bad_input_is_422_problem(service: TestClient) -> None:
    for body in (
        {"prompt": ""},
        {"prompt": "   "},
        {"prompt": "x" * 2001},
        {"prompt": "hi", "session_id": "../etc"},
        {"prompt": "hi", "session_id": "a/b"},
        {"prompt": "hi", "unexpected": 1},
        {},
    ):
        r = service.post("/process", json=body)
        assert r.status_code == 422, body
        assert r.headers["content-type"].startswith("application/problem+json")
        r = service.post("/process-streaming", json=body)
        assert r.status_code == 422, body
    # an id with a slash never reaches the route; ids that reach it are validated
    assert service.get("/sessions/a..b%2Fc/history").status_code == 404
    for bad_id in ("%2E%2E", "has%20space", "x" * 257):
        assert service.get(f"/sessions/{bad_id}/history").status_code == 422, bad_id


def test_cache_miss_rebuilds_from_backend(service: TestClient) -> None:
    sid = f"svc-{uuid.uuid4().hex[:8]}"
    service.post("/process", json={"prompt": "remember me", "session_id": sid})
    service.app.state.agents.drop(sid)  # type: ignore[attr-defined]
    r = service.post("/process", json={"prompt": "who?", "session_id": sid}).json()
    assert r["status"]["cached_agent"] is False and r["status"]["conversation_length"] == 4
    assert "first: remember me" in r["response"]


def test_streaming_sse_framing(service: TestClient) -> None:
    sid = f"sse-{uuid.uuid4().hex[:8]}"
    status, ctype, events = sse_events(service, {"prompt": "stream please", "session_id": sid})
    assert status == 200 and ctype.startswith("text/event-stream")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("text") >= 3
    text = "".join(e["data"] for e in events if e["type"] == "text")
    done = events[-1]
    assert done["session_id"] == sid and done["response"] == text.strip()
    assert done["status"]["conversation_length"] == 2


def test_backend_down_is_503(agent_settings: AgentSettings, port_factory: Any) -> None:
    dead = agent_settings.model_copy(update={"backend_url": f"http://127.0.0.1:{port_factory()}"})
    with TestClient(create_app(dead, model=ScriptedModel())) as client:
        r = client.post("/process", json={"prompt": "hi"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "unavailable" in r.json()["detail"]
        status, _, events = sse_events(client, {"prompt": "hi"})
        assert status == 200 and events[-1]["type"] == "error" and events[-1]["status"] == 503
        assert client.get("/sessions").status_code == 503


def test_turns_on_one_session_are_serialized(service: TestClient) -> None:
    import concurrent.futures

    sid = f"ser-{uuid.uuid4().hex[:8]}"
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda i: service.post("/process", json={"prompt": f"p{i}", "session_id": sid}), range(8))
        )
    assert all(r.status_code == 200 for r in results)
    lengths = sorted(r.json()["status"]["conversation_length"] for r in results)
    assert lengths == [2, 4, 6, 8, 10, 12, 14, 16]
    msgs = service.get(f"/sessions/{sid}/history").json()["messages"]
    assert [m["message_id"] for m in msgs] == list(range(16))
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 8
