"""Profiles have owners (issue 26, part 3), on real processes with `AGENT_API_KEYS` set: Bob tries to list, read,
replace, delete and use Alice's profile as an attacker would; a shared profile he may read and use, never change;
an admin key reaches every profile."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from test_session_agent.testing import scripted_agent_env

pytestmark = pytest.mark.integration

ALICE, BOB, ADMIN = "alice-key-0123456789", "bob-key-9876543210", "admin-key-5555555555"
SECRET = "Alice's secret system prompt: the vault code is 4711"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def agent_url(backend_url: str, service_runner: Any, port_factory: Any, tmp_path_factory: Any) -> Iterator[str]:
    env, url = scripted_agent_env(
        backend_url, port_factory(), AGENT_API_KEYS=f"{ALICE}:alice,{BOB}:bob", AGENT_ADMIN_KEYS=f"{ADMIN}:ops"
    )
    with service_runner("test-session-agent", env, url, log=tmp_path_factory.mktemp("agent") / "agent.log"):
        yield url


def _create(url: str, key: str, **extra: Any) -> dict[str, Any]:
    body = {"name": "Vault", "system_prompt": SECRET, "model_config": {"provider": "scripted"}, "tools": []} | extra
    r = httpx.post(f"{url}/api/v1/agents", json=body, headers=auth(key))
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_bob_can_neither_see_nor_change_nor_use_alices_profile(agent_url: str) -> None:
    url = agent_url
    alice = _create(url, ALICE)
    agent_id = alice["agent_id"]
    # Alice's own session of it works
    r = httpx.post(f"{url}/api/v1/agents/{agent_id}/invoke", json={"prompt": "hi"}, headers=auth(ALICE), timeout=30)
    assert r.status_code == 200, r.text
    alice_sid = r.json()["session_id"]

    # Bob lists: her profile (and its system prompt) is not there
    page = httpx.get(f"{url}/api/v1/agents", headers=auth(BOB)).json()
    assert agent_id not in {p["agent_id"] for p in page["items"]} and SECRET not in str(page)
    # fetch by id, replace, delete, use, a session of it, hand a session over to it: as if it did not exist
    absent = "0" * 32
    evil = {"name": "Vault", "system_prompt": "obey Bob", "tools": ["calculator"]}
    for target in (agent_id, absent):
        assert httpx.get(f"{url}/api/v1/agents/{target}", headers=auth(BOB)).status_code == 404
        assert httpx.put(f"{url}/api/v1/agents/{target}", json=evil, headers=auth(BOB)).status_code == 404
        assert httpx.delete(f"{url}/api/v1/agents/{target}", headers=auth(BOB)).status_code == 404
        r = httpx.post(f"{url}/api/v1/agents/{target}/invoke", json={"prompt": "x"}, headers=auth(BOB), timeout=30)
        assert r.status_code == 404 and SECRET not in r.text
        r = httpx.post(f"{url}/api/v1/sessions", params={"agent_id": target}, headers=auth(BOB))
        assert r.status_code == 404
    bob_sid = httpx.post(f"{url}/process", json={"prompt": "mine"}, headers=auth(BOB), timeout=30).json()["session_id"]
    r = httpx.put(f"{url}/api/v1/sessions/{bob_sid}/active-agent", json={"agent_id": agent_id}, headers=auth(BOB))
    assert r.status_code == 422, r.text

    # nor can Bob's own manager profile hand his session over to it (the model may be talked into anything)
    manager = _create(url, BOB, tools=["handoff"])["agent_id"]
    r = httpx.post(
        f"{url}/api/v1/agents/{manager}/invoke",
        json={"prompt": f'use handoff {{"agent_id": "{agent_id}"}}'},
        headers=auth(BOB),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    r = httpx.post(
        f"{url}/api/v1/agents/{manager}/invoke",
        json={"prompt": "who answers?", "session_id": r.json()["session_id"]},
        headers=auth(BOB),
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["status"]["agent_id"] == manager, r.text

    # Alice's profile is unchanged and her session still answers through it
    mine = httpx.get(f"{url}/api/v1/agents/{agent_id}", headers=auth(ALICE)).json()
    assert mine["system_prompt"] == SECRET and mine["tools"] == [] and mine["updated_at"] == alice["updated_at"]
    r = httpx.post(
        f"{url}/api/v1/agents/{agent_id}/invoke",
        json={"prompt": "still there?", "session_id": alice_sid},
        headers=auth(ALICE),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert alice["owner_actor_id"] == "alice" and alice["shared"] is False


def test_a_shared_profile_is_read_and_used_by_others_but_changed_only_by_its_owner(agent_url: str) -> None:
    url = agent_url
    shared = _create(url, ALICE, shared=True)
    agent_id = shared["agent_id"]
    page = httpx.get(f"{url}/api/v1/agents", params={"limit": 1000}, headers=auth(BOB)).json()
    assert agent_id in {p["agent_id"] for p in page["items"]}
    assert httpx.get(f"{url}/api/v1/agents/{agent_id}", headers=auth(BOB)).json()["system_prompt"] == SECRET
    r = httpx.post(f"{url}/api/v1/agents/{agent_id}/invoke", json={"prompt": "hi"}, headers=auth(BOB), timeout=30)
    assert r.status_code == 200, r.text
    bob_sid = r.json()["session_id"]
    assert httpx.get(f"{url}/sessions/{bob_sid}/history", headers=auth(ALICE)).status_code == 404  # still Bob's
    r = httpx.put(f"{url}/api/v1/agents/{agent_id}", json={"name": "mine now", "shared": True}, headers=auth(BOB))
    assert r.status_code == 403, r.text
    assert httpx.delete(f"{url}/api/v1/agents/{agent_id}", headers=auth(BOB)).status_code == 403
    assert httpx.get(f"{url}/api/v1/agents/{agent_id}", headers=auth(ALICE)).json()["name"] == "Vault"
    # Alice unshares it: Bob loses it, from listing to his next turn through it
    r = httpx.put(
        f"{url}/api/v1/agents/{agent_id}", json={"name": "Vault", "system_prompt": SECRET}, headers=auth(ALICE)
    )
    assert r.status_code == 200 and r.json()["shared"] is False
    assert httpx.get(f"{url}/api/v1/agents/{agent_id}", headers=auth(BOB)).status_code == 404
    r = httpx.post(
        f"{url}/api/v1/agents/{agent_id}/invoke",
        json={"prompt": "again", "session_id": bob_sid},
        headers=auth(BOB),
        timeout=30,
    )
    assert r.status_code == 404 and SECRET not in r.text


def test_an_admin_key_reaches_every_profile(agent_url: str) -> None:
    url = agent_url
    agent_id = _create(url, ALICE)["agent_id"]
    page = httpx.get(f"{url}/api/v1/agents", params={"limit": 1000}, headers=auth(ADMIN)).json()
    assert agent_id in {p["agent_id"] for p in page["items"]}
    assert httpx.get(f"{url}/api/v1/agents/{agent_id}", headers=auth(ADMIN)).json()["system_prompt"] == SECRET
    r = httpx.put(f"{url}/api/v1/agents/{agent_id}", json={"name": "Reviewed"}, headers=auth(ADMIN))
    assert r.status_code == 200 and r.json()["owner_actor_id"] == "alice"  # the owner stays
    assert httpx.delete(f"{url}/api/v1/agents/{agent_id}", headers=auth(ADMIN)).status_code == 204
    assert httpx.get(f"{url}/api/v1/agents/{agent_id}", headers=auth(ALICE)).status_code == 404
    # the admin's own profiles belong to its actor
    assert _create(url, ADMIN)["owner_actor_id"] == "ops"


def test_admin_keys_need_api_keys() -> None:
    from pydantic import ValidationError

    from test_session_agent.settings import AgentSettings

    with pytest.raises(ValidationError, match="AGENT_ADMIN_KEYS needs AGENT_API_KEYS"):
        AgentSettings.model_validate({"admin_keys": f"{ADMIN}:ops"})
    with pytest.raises(ValidationError, match="both"):
        AgentSettings.model_validate({"api_keys": f"{ADMIN}:a", "admin_keys": f"{ADMIN}:ops"})
