"""Access control without a backend: AGENT_API_KEYS parsing, 401 answers, constant-time key checks, CORS, the page."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from pydantic import ValidationError

from test_session_agent.api.app import create_app
from test_session_agent.api.deps import OwnActorId, get_caller
from test_session_agent.models.scripted import ScriptedModel
from test_session_agent.settings import AgentSettings

# Nothing listens here: a request that got past access control would fail as "backend unavailable" (503).
UNREACHABLE = "http://127.0.0.1:9"


def settings(**values: Any) -> AgentSettings:
    return AgentSettings.model_validate(
        {"backend_url": UNREACHABLE, "model_provider": "scripted", "backend_timeout_seconds": 0.5} | values
    )


@pytest.fixture()
def make_client() -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**values: Any) -> TestClient:
        client = TestClient(create_app(settings(**values), model=ScriptedModel()))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_key_pairs_parsed_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_API_KEYS", " k1:alice , k2:bob,,k3:alice ")
    monkeypatch.setenv("AGENT_CORS_ORIGINS", "https://a.example/, http://localhost:3000")
    s = AgentSettings()
    assert s.api_keys == {"k1": "alice", "k2": "bob", "k3": "alice"}
    assert s.cors_origins == ["https://a.example", "http://localhost:3000"]
    assert "k1" not in repr(s)


@pytest.mark.parametrize("value", ["k1", "k1:", ":alice", "k1:al/ice", "k1:..", "k1:a b", "k1:a,k1:b"])
def test_malformed_key_pairs_fail_fast_without_printing_keys(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AGENT_API_KEYS", value)
    with pytest.raises(ValidationError) as info:
        AgentSettings()
    assert "AGENT_API_KEYS pair" in str(info.value)
    assert value not in str(info.value)


def test_unset_keys_mean_open_access(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    # Past access control to the (unreachable) backend.
    assert client.get("/sessions").status_code == 503


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", "Bearer ", "Bearer k1x", "Bearer k", "Basic azE6", "k1", "bearer  k1 extra", "Bearer k1,k2"],
)
def test_401_without_a_valid_key(make_client: Callable[..., TestClient], authorization: str | None) -> None:
    client = make_client(AGENT_API_KEYS="k1:alice")
    headers = {"Authorization": authorization} if authorization is not None else {}
    r = client.get("/sessions", headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 401


def test_valid_key_passes(make_client: Callable[..., TestClient]) -> None:
    client = make_client(AGENT_API_KEYS="k1:alice")
    assert client.get("/sessions", headers={"Authorization": "Bearer k1"}).status_code == 503
    assert client.get("/sessions", headers={"Authorization": "bearer k1"}).status_code == 503


def test_every_key_is_compared_in_constant_time(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(AGENT_API_KEYS="k1:alice,k2:bob,k3:carol")
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    for key in ("k1", "k3", "nope"):
        calls.clear()
        client.get("/sessions", headers={"Authorization": f"Bearer {key}"})
        # all three keys, whichever matched, each as an equal-length digest
        assert len(calls) == 3 and all(len(a) == len(b) == 32 for a, b in calls)


def test_body_actor_cannot_claim_another_identity(make_client: Callable[..., TestClient]) -> None:
    client = make_client(AGENT_API_KEYS="k1:alice")
    auth = {"Authorization": "Bearer k1"}
    r = client.post("/process", json={"prompt": "hi", "actor_id": "bob"}, headers=auth)
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert client.get("/sessions?actor_id=bob", headers=auth).status_code == 403


def test_health_and_page_need_no_key(make_client: Callable[..., TestClient]) -> None:
    client = make_client(AGENT_API_KEYS="k1:alice")
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["access_control"] is True
    assert make_client().get("/health").json()["access_control"] is False
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="/static/app.js"' in page.text
    for asset, kind in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        r = client.get(asset)
        assert r.status_code == 200 and kind in r.headers["content-type"]
    assert client.get("/static/../settings.py").status_code == 404
    assert client.get("/static/%2e%2e/settings.py").status_code == 404


def test_openapi_declares_bearer_auth(make_client: Callable[..., TestClient]) -> None:
    schema = make_client().get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert schema["paths"]["/sessions"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in schema["paths"]["/health"]["get"]


def test_cors_off_by_default_and_configurable(make_client: Callable[..., TestClient]) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    off = make_client()
    assert "access-control-allow-origin" not in off.options("/process", headers=preflight).headers
    on = make_client(AGENT_CORS_ORIGINS="https://app.example", AGENT_API_KEYS="k1:alice")
    r = on.options("/process", headers=preflight | {"Access-Control-Request-Headers": "authorization,content-type"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    other = on.options("/process", headers=preflight | {"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_own_actor_path_parameter(make_client: Callable[..., TestClient]) -> None:
    router = APIRouter(dependencies=[Depends(get_caller)])

    @router.get("/actors/{actor_id}/things")
    async def things(actor_id: OwnActorId) -> dict[str, str]:
        return {"actor_id": actor_id}

    client = make_client(AGENT_API_KEYS="k1:alice")
    client.app.include_router(router)  # type: ignore[attr-defined]
    auth = {"Authorization": "Bearer k1"}
    assert client.get("/actors/alice/things", headers=auth).json() == {"actor_id": "alice"}
    assert client.get("/actors/bob/things", headers=auth).status_code == 404
    assert client.get("/actors/alice/things").status_code == 401
