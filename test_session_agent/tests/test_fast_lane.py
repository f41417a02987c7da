"""The fast lane of `POST /process-streaming` (`api/fastlane.py`): it answers plain streamed turns itself, and every
request it does not answer, or refuses, gets exactly the answer the FastAPI route gives with the lane off."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import ASGIApp, Receive, Scope, Send

from test_session_agent.api.app import AgentApp, create_app
from test_session_agent.api.fastlane import TurnFastLane
from test_session_agent.models.scripted import ScriptedModel
from test_session_agent.settings import AgentSettings

pytestmark = pytest.mark.integration

DEVICE = uuid.uuid4()
KEYS = f"key-a:alice,key-b:bob,key-d:{DEVICE}"
ALICE = {"Authorization": "Bearer key-a"}
BOB = {"Authorization": "Bearer key-b"}


@pytest.fixture(scope="module")
def keyed_settings(backend_url: str) -> AgentSettings:
    return AgentSettings.model_validate(
        {
            "backend_url": backend_url,
            "model_provider": "scripted",
            "backend_api_key": None,
            "max_prompt_chars": 2000,
            "api_keys": KEYS,
        }
    )


class Lanes:
    """The same service with the fast lane on (`lane`) and off (`route`); `referred` lists the lane's hand-overs."""

    def __init__(self, lane: TestClient, route: TestClient, referred: list[str]) -> None:
        self.lane, self.route, self.referred = lane, route, referred


@pytest.fixture(scope="module")
def lanes(keyed_settings: AgentSettings) -> Iterator[Lanes]:
    referred: list[str] = []
    app = create_app(keyed_settings, model=ScriptedModel())
    assert isinstance(app, AgentApp) and app.fast_lane is not None
    make_lane = app.fast_lane

    def counting_lane(stack: ASGIApp) -> ASGIApp:
        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                referred.append(scope["path"])
            await stack(scope, receive, send)

        lane = make_lane(counted)
        assert isinstance(lane, TurnFastLane)
        return lane

    app.fast_lane = counting_lane
    off = create_app(keyed_settings.model_copy(update={"fast_lane": False}), model=ScriptedModel())
    with TestClient(app) as lane, TestClient(off) as route:
        yield Lanes(lane, route, referred)


def _events(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def _requests_counted(client: TestClient, **labels: str) -> float:
    text = client.get("/metrics", headers=ALICE).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_requests_total" and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_a_plain_streamed_turn_is_answered_by_the_lane_and_counted(lanes: Lanes) -> None:
    labels = {"handler": "/process-streaming", "method": "POST", "status": "2xx"}
    before = _requests_counted(lanes.lane, **labels)
    lanes.referred.clear()
    sid = f"lane-{uuid.uuid4().hex[:8]}"
    for prompt in ("one", "two"):
        r = lanes.lane.post("/process-streaming", json={"prompt": prompt, "session_id": sid}, headers=ALICE)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _events(r.text)
        assert events[0]["type"] == "start" and events[-1]["type"] == "done"
        assert "".join(e["data"] for e in events if e["type"] == "text") == events[-1]["response"]
    assert lanes.referred == []
    assert _requests_counted(lanes.lane, **labels) == before + 2
    # The turn is the key's actor's, as through the route: bob does not see alice's session.
    assert lanes.lane.get(f"/sessions/{sid}/history", headers=BOB).status_code == 404
    assert len(lanes.lane.get(f"/sessions/{sid}/history", headers=ALICE).json()["messages"]) == 4


def _alices_session(lanes: Lanes) -> str:
    sid = f"lane-{uuid.uuid4().hex[:8]}"
    assert lanes.route.post("/process", json={"prompt": "mine", "session_id": sid}, headers=ALICE).status_code == 200
    return sid


# (name, body bytes or a function of the alice session id, headers): each is handed to the route, which refuses it
CASES: list[tuple[str, Any, dict[str, str]]] = [
    ("not JSON", b"{prompt: nope", ALICE),
    ("extra field", b'{"prompt": "hi", "colour": "red"}', ALICE),
    ("blank prompt", b'{"prompt": "   "}', ALICE),
    ("bad session id", b'{"prompt": "hi", "session_id": "a/b"}', ALICE),
    ("no key", b'{"prompt": "hi"}', {}),
    ("wrong key", b'{"prompt": "hi"}', {"Authorization": "Bearer nope"}),
    ("not bearer", b'{"prompt": "hi"}', {"Authorization": "Basic a2V5LWE="}),
    ("text/plain", b'{"prompt": "hi"}', ALICE | {"Content-Type": "text/plain"}),
    ("over-long prompt", orjson.dumps({"prompt": "x" * 2001}), ALICE),
    ("another actor named", b'{"prompt": "hi", "actor_id": "bob"}', ALICE),
    ("another actor's session", lambda sid: orjson.dumps({"prompt": "hi", "session_id": sid}), BOB),
    ("bad device id", b'{"prompt": "hi"}', ALICE | {"X-Device-ID": "not-a-uuid"}),
    ("bad idempotency key", b'{"prompt": "hi"}', ALICE | {"Idempotency-Key": "a b"}),
]


@pytest.mark.parametrize(("body", "headers"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_refusal_is_the_routes_own(lanes: Lanes, body: Any, headers: dict[str, str]) -> None:
    if callable(body):
        body = body(_alices_session(lanes))
    headers = {"Content-Type": "application/json"} | headers
    refusals = {"handler": "/process-streaming", "method": "POST", "status": "4xx"}
    counted = _requests_counted(lanes.lane, **refusals)
    lanes.referred.clear()
    via_lane = lanes.lane.post("/process-streaming", content=body, headers=headers)
    assert lanes.referred == ["/process-streaming"]  # the lane never writes a refusal of its own
    assert _requests_counted(lanes.lane, **refusals) == counted + 1  # once, by the lane or by the route
    via_route = lanes.route.post("/process-streaming", content=body, headers=headers)
    assert 400 <= via_lane.status_code < 500, via_lane.text
    assert via_lane.status_code == via_route.status_code
    assert via_lane.json() == via_route.json()
    assert via_lane.headers["content-type"] == via_route.headers["content-type"]
    assert via_lane.headers.get("www-authenticate") == via_route.headers.get("www-authenticate")


def test_a_body_over_the_limit_gets_the_routes_413(lanes: Lanes, keyed_settings: AgentSettings) -> None:
    body = orjson.dumps({"prompt": "x" * (keyed_settings.max_request_bytes + 10)})
    headers = ALICE | {"Content-Type": "application/json"}
    lanes.referred.clear()
    via_lane = lanes.lane.post("/process-streaming", content=body, headers=headers)
    via_route = lanes.route.post("/process-streaming", content=body, headers=headers)
    assert lanes.referred == ["/process-streaming"]
    assert via_lane.status_code == via_route.status_code == 413
    assert via_lane.json() == via_route.json()


def test_a_device_turn_goes_to_the_route_and_streams(lanes: Lanes) -> None:
    lanes.referred.clear()
    device = {"X-Device-ID": str(DEVICE), "Authorization": "Bearer key-d"}
    r = lanes.lane.post("/process-streaming", json={"prompt": "hello"}, headers=device)
    assert r.status_code == 200 and _events(r.text)[-1]["type"] == "done"
    assert lanes.referred == ["/process-streaming"]


def test_with_cors_on_a_request_with_an_origin_gets_the_routes_cors_headers(keyed_settings: AgentSettings) -> None:
    origin = "https://chat.example.com"
    settings = keyed_settings.model_copy(update={"cors_origins": [origin]})
    with TestClient(create_app(settings, model=ScriptedModel())) as client:
        plain = client.post("/process-streaming", json={"prompt": "hi"}, headers=ALICE)
        assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers
        cross = client.post("/process-streaming", json={"prompt": "hi"}, headers=ALICE | {"Origin": origin})
        assert cross.status_code == 200 and _events(cross.text)[-1]["type"] == "done"
        assert cross.headers["access-control-allow-origin"] == origin
