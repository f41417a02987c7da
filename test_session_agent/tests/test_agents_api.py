"""The `/api/v1` routes (scripted model, real backend process, real PostgreSQL): agent profiles and examples,
sessions of a profile, invoke (+ streaming) with tools and long-term memory per actor, and every refusal."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from session_backend.testing import memories_stalled
from test_session_agent.api.app import create_app
from test_session_agent.models.scripted import ScriptedModel
from test_session_agent.settings import AgentSettings

pytestmark = pytest.mark.integration

WEATHER_PROFILE = {"name": "Weather", "system_prompt": "Be brief.", "tools": ["current_time"]}


def create_profile(service: TestClient, **overrides: Any) -> dict[str, Any]:
    r = service.post("/api/v1/agents", json=WEATHER_PROFILE | overrides)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def invoke(service: TestClient, agent_id: str, prompt: str, **fields: Any) -> dict[str, Any]:
    r = service.post(f"/api/v1/agents/{agent_id}/invoke", json={"prompt": prompt} | fields)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def assert_problem(r: Any, status: int, detail_part: str = "") -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert detail_part in r.json()["detail"]


def test_profile_life_cycle(service: TestClient) -> None:
    created = create_profile(service, model_config={"provider": "scripted", "temperature": 0.5})
    agent_id = created["agent_id"]
    assert created["model_config"] == {"provider": "scripted", "temperature": 0.5}
    assert created["tools"] == ["current_time"] and created["created_at"] == created["updated_at"]
    assert service.get(f"/api/v1/agents/{agent_id}").json() == created

    r = service.put(f"/api/v1/agents/{agent_id}", json={"name": "Weather v2", "tools": ["calculator"]})
    assert r.status_code == 200
    updated = r.json()
    assert (updated["name"], updated["system_prompt"], updated["model_config"]) == ("Weather v2", None, {})
    assert updated["updated_at"] > created["updated_at"]

    listed = service.get("/api/v1/agents", params={"limit": 1000}).json()
    assert agent_id in [p["agent_id"] for p in listed["items"]] and listed["next_cursor"] is None

    assert service.delete(f"/api/v1/agents/{agent_id}").status_code == 204
    for r in (
        service.get(f"/api/v1/agents/{agent_id}"),
        service.put(f"/api/v1/agents/{agent_id}", json={"name": "x"}),
        service.delete(f"/api/v1/agents/{agent_id}"),
        service.post(f"/api/v1/agents/{agent_id}/invoke", json={"prompt": "hi"}),
    ):
        assert_problem(r, 404, f"agent {agent_id!r} not found")


def test_bad_profiles_are_422(service: TestClient) -> None:
    for body, detail in (
        (WEATHER_PROFILE | {"tools": ["shell"]}, "unknown tools ['shell']"),
        (WEATHER_PROFILE | {"tools": ["calculator", "calculator"]}, "unique"),
        (WEATHER_PROFILE | {"model_config": {"provider": "skynet"}}, "provider"),
        (WEATHER_PROFILE | {"model_config": {"temperature": 9}}, "temperature"),
        (WEATHER_PROFILE | {"model_config": {"top_k": 3}}, "top_k"),
        ({"name": ""}, "name"),
        (WEATHER_PROFILE | {"colour": "red"}, "colour"),
    ):
        assert_problem(service.post("/api/v1/agents", json=body), 422, detail)
    agent_id = create_profile(service)["agent_id"]
    r = service.put(f"/api/v1/agents/{agent_id}", json={"name": "x", "tools": ["rm"]})
    assert_problem(r, 422, "unknown tools")
    assert service.get(f"/api/v1/agents/{agent_id}").json()["tools"] == ["current_time"]


def test_examples(service: TestClient) -> None:
    r = service.post("/api/v1/agents/examples/customer_support")
    assert r.status_code == 201, r.text
    support = r.json()
    assert support["name"] == "Customer support" and set(support["tools"]) == {"calculator", "current_time"}
    again = service.post("/api/v1/agents/examples/customer_support").json()
    assert again["agent_id"] != support["agent_id"]  # each call stores a new profile
    assert_problem(service.post("/api/v1/agents/examples/pirate"), 404, "example 'pirate' not found")
    answer = invoke(service, support["agent_id"], 'use calculator {"expression": "3 * 19.99"}')
    assert answer["response"] == "calculator returned: 59.97"


def test_sessions_of_a_profile(service: TestClient) -> None:
    agent_id = create_profile(service)["agent_id"]
    r = service.post("/api/v1/sessions", params={"agent_id": agent_id, "actor_id": "actor-s"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["agent_id"], created["actor_id"]) == (agent_id, "actor-s") and created["expires_at"]
    answer = invoke(service, agent_id, "hello", session_id=created["session_id"])
    assert answer["session_id"] == created["session_id"] and answer["agent_id"] == agent_id
    assert answer["status"]["agent_id"] == agent_id and answer["status"]["conversation_length"] == 2

    assert_problem(service.post("/api/v1/sessions", params={"agent_id": "nobody"}), 404, "agent 'nobody' not found")
    assert_problem(service.post("/api/v1/sessions"), 422, "agent_id")
    assert_problem(service.post("/api/v1/sessions", params={"agent_id": "a/b"}), 422)


def test_invoke_new_session_then_continue(service: TestClient) -> None:
    agent_id = create_profile(service)["agent_id"]
    first = invoke(service, agent_id, "Hello, my name is Alice")
    sid = first["session_id"]
    assert first["status"]["conversation_length"] == 2 and "you said: Hello, my name is Alice" in first["response"]
    second = invoke(service, agent_id, "What is my name?", session_id=sid)
    assert second["status"]["cached_agent"] is True and "first: Hello, my name is Alice" in second["response"]
    history = service.get(f"/sessions/{sid}/history").json()["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"] * 2
    session = service.get("/sessions", params={"limit": 1000}).json()["items"]
    assert {"agent_profile_id": agent_id} == next(s["metadata"] for s in session if s["session_id"] == sid)


def test_invoke_refusals(service: TestClient) -> None:
    mine, theirs = create_profile(service)["agent_id"], create_profile(service)["agent_id"]
    sid = invoke(service, mine, "hi")["session_id"]
    r = service.post(f"/api/v1/agents/{theirs}/invoke", json={"prompt": "hi", "session_id": sid})
    assert_problem(r, 409, f"session {sid!r} belongs to agent {mine!r}, not to agent {theirs!r}")
    r = service.post(f"/api/v1/agents/{theirs}/invoke-streaming", json={"prompt": "hi", "session_id": sid})
    assert_problem(r, 409, "belongs to agent")
    # a /process session belongs to no profile
    plain = service.post("/process", json={"prompt": "hi"}).json()["session_id"]
    r = service.post(f"/api/v1/agents/{mine}/invoke", json={"prompt": "hi", "session_id": plain})
    assert_problem(r, 409, "belongs to agent None")

    unknown = f"never-{uuid.uuid4().hex[:8]}"
    r = service.post(f"/api/v1/agents/{mine}/invoke", json={"prompt": "hi", "session_id": unknown})
    assert_problem(r, 404, f"session {unknown!r} not found or expired")
    assert service.get(f"/sessions/{unknown}/history").status_code == 404  # nothing created under the id
    for body in ({"prompt": ""}, {"prompt": "x" * 2001}, {"prompt": "hi", "session_id": "../x"}, {"prompt": 1}):
        assert_problem(service.post(f"/api/v1/agents/{mine}/invoke", json=body), 422)


def test_expired_session_is_404(agent_settings: AgentSettings) -> None:
    settings = agent_settings.model_copy(update={"session_default_ttl_seconds": 1})
    with TestClient(create_app(settings, model=ScriptedModel())) as service:
        agent_id = create_profile(service)["agent_id"]
        sid = invoke(service, agent_id, "remember me")["session_id"]
        time.sleep(1.5)
        r = service.post(f"/api/v1/agents/{agent_id}/invoke", json={"prompt": "still there?", "session_id": sid})
        assert_problem(r, 404, f"session {sid!r} not found or expired")
        r = service.post(f"/api/v1/agents/{agent_id}/invoke-streaming", json={"prompt": "hi", "session_id": sid})
        assert_problem(r, 404, "not found or expired")


def test_never_expiring_sessions(agent_settings: AgentSettings) -> None:
    settings = agent_settings.model_copy(update={"session_default_ttl_seconds": 0})
    with TestClient(create_app(settings, model=ScriptedModel())) as service:
        agent_id = create_profile(service)["agent_id"]
        r = service.post("/api/v1/sessions", params={"agent_id": agent_id})
        assert r.status_code == 201 and r.json()["expires_at"] is None and r.json()["actor_id"] is None


def sse(service: TestClient, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with service.stream("POST", path, json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = "".join(r.iter_text())
    return [
        orjson.loads(line[5:])
        for frame in raw.replace("\r\n", "\n").split("\n\n")
        for line in frame.split("\n")
        if line.startswith("data:")
    ]


def test_invoke_streaming(service: TestClient) -> None:
    agent_id = create_profile(service)["agent_id"]
    events = sse(service, f"/api/v1/agents/{agent_id}/invoke-streaming", {"prompt": "stream this"})
    start, *texts, done = events
    assert start["type"] == "start" and done["type"] == "done"
    assert done["session_id"] == start["session_id"] and done["agent_id"] == agent_id
    assert "".join(t["data"] for t in texts) == done["response"] and "you said: stream this" in done["response"]
    events = sse(
        service,
        f"/api/v1/agents/{agent_id}/invoke-streaming",
        {"prompt": "use current_time", "session_id": start["session_id"]},
    )
    assert events[-1]["type"] == "done" and events[-1]["response"].startswith("current_time returned: 20")
    assert_problem(service.post("/api/v1/agents/nobody/invoke-streaming", json={"prompt": "hi"}), 404)


def test_tool_use_is_stored_and_restored(service: TestClient) -> None:
    agent_id = create_profile(service, tools=["calculator"])["agent_id"]
    answer = invoke(service, agent_id, 'use calculator {"expression": "6 * 7"}')
    sid = answer["session_id"]
    assert answer["response"] == "calculator returned: 42" and answer["status"]["conversation_length"] == 4
    history = service.get(f"/sessions/{sid}/history").json()["messages"]
    tool_use = history[1]["content"][0]["toolUse"]
    tool_result = history[2]["content"][0]["toolResult"]
    assert (tool_use["name"], tool_use["input"]) == ("calculator", {"expression": "6 * 7"})
    assert tool_result["toolUseId"] == tool_use["toolUseId"] and tool_result["content"] == [{"text": "42"}]
    # a refused expression is the tool's error result, not a failed turn
    bad = invoke(service, agent_id, 'use calculator {"expression": "__import__(\\"os\\")"}', session_id=sid)
    assert bad["response"].startswith("calculator returned: Error:") and "not defined" in bad["response"]


def test_profile_update_reaches_the_next_turn(service: TestClient) -> None:
    agent_id = create_profile(service, tools=[])["agent_id"]
    first = invoke(service, agent_id, 'use calculator {"expression": "1 + 1"}')
    assert "you said: use calculator" in first["response"]  # no such tool offered: the model just echoes
    sid = first["session_id"]
    service.put(f"/api/v1/agents/{agent_id}", json={"name": "Weather", "tools": ["calculator"]})
    second = invoke(service, agent_id, 'use calculator {"expression": "1 + 1"}', session_id=sid)
    assert second["response"] == "calculator returned: 2"
    assert second["status"]["cached_agent"] is False and second["status"]["conversation_length"] == 6
    third = invoke(service, agent_id, "thanks", session_id=sid)
    assert third["status"]["cached_agent"] is True


def test_memory_is_per_actor(service: TestClient) -> None:
    agent_id = create_profile(service)["agent_id"]
    suffix = uuid.uuid4().hex[:6]
    alice, bob = f"user-123-{suffix}", f"user-456-{suffix}"
    told = invoke(service, agent_id, "I live in San Francisco and prefer Celsius. What is the time?", actor_id=alice)
    assert told["status"]["injected_memory"] is None
    memories = service.get(f"/api/v1/actors/{alice}/memories").json()["items"]
    assert [m["content"] for m in memories] == ["I live in San Francisco and prefer Celsius"]
    assert memories[0]["metadata"] == {"extractor": "first_person", "role": "user"}

    question = "Where do I live, and which unit do I prefer for the weather?"
    known = invoke(service, agent_id, question, actor_id=alice)
    assert known["session_id"] != told["session_id"]
    injected = known["status"]["injected_memory"]
    assert injected == "Facts the user told you in earlier conversations:\n- I live in San Francisco and prefer Celsius"
    assert "San Francisco" in known["response"]  # the scripted model echoes the folded-in context
    history = service.get(f"/sessions/{known['session_id']}/history").json()["messages"]
    assert history[0]["content"] == [{"text": question}]  # injected context is never stored

    unknown = invoke(service, agent_id, question, actor_id=bob)
    assert unknown["status"]["injected_memory"] is None and "San Francisco" not in unknown["response"]
    assert service.get(f"/api/v1/actors/{bob}/memories").json()["items"] == []
    # the session's actor is the turn's when the turn names none
    again = invoke(service, agent_id, question, session_id=known["session_id"])
    assert "San Francisco" in (again["status"]["injected_memory"] or "")


def metric(client: TestClient, name: str) -> float:
    lines = [line for line in client.get("/metrics").text.splitlines() if line.startswith(f"{name} ")]
    return float(lines[0].split()[1]) if lines else 0.0


def test_memory_recall_waits_at_most_its_budget(agent_settings: AgentSettings, database_url: str) -> None:
    settings = agent_settings.model_copy(update={"memory_recall_budget_seconds": 0.3})  # the default
    with TestClient(create_app(settings, model=ScriptedModel())) as service:
        agent_id = create_profile(service)["agent_id"]
        actor = f"user-r-{uuid.uuid4().hex[:6]}"
        invoke(service, agent_id, "I keep bees on my balcony in Porto.", actor_id=actor)
        assert metric(service, "agent_memory_recall_timeouts_total") == 0
        question = "Where do I keep my bees?"  # a question: nothing to extract, so the turn writes no memory
        with memories_stalled(database_url):
            stalled = invoke(service, agent_id, question, actor_id=actor)
        assert stalled["status"]["injected_memory"] is None and "Porto" not in stalled["response"]
        assert metric(service, "agent_memory_recall_timeouts_total") == 1
        recalled = invoke(service, agent_id, question, actor_id=actor)
        assert "I keep bees on my balcony in Porto" in (recalled["status"]["injected_memory"] or "")


def test_memories_extracted_per_turn_are_capped(service: TestClient) -> None:
    agent_id = create_profile(service)["agent_id"]
    actor = f"user-c-{uuid.uuid4().hex[:6]}"
    before = metric(service, 'agent_memories_not_extracted_total{reason="turn_cap"}')
    invoke(service, agent_id, " ".join(f"I like item {i:02}." for i in range(30)), actor_id=actor)
    stored = service.get(f"/api/v1/actors/{actor}/memories", params={"limit": 100}).json()["items"]
    assert sorted(m["content"] for m in stored) == [f"I like item {i:02}" for i in range(20)]  # the first 20
    assert metric(service, 'agent_memories_not_extracted_total{reason="turn_cap"}') == before + 10


def test_extracted_memories_record_their_source_and_go_with_a_redaction(
    service: TestClient, agent_settings: AgentSettings
) -> None:
    agent_id = create_profile(service)["agent_id"]
    actor = f"user-p-{uuid.uuid4().hex[:6]}"
    first = invoke(service, agent_id, "Hello there, what time is it?", actor_id=actor)
    sid = first["session_id"]
    invoke(service, agent_id, "I grow tomatoes on my roof.", actor_id=actor, session_id=sid)
    [memory] = service.get(f"/api/v1/actors/{actor}/memories").json()["items"]
    assert memory["content"] == "I grow tomatoes on my roof"
    # the second turn's messages: the prompt (2) and the answer (3), after the first turn's 0 and 1
    assert memory["source"] == {"session_id": sid, "agent_id": "default", "message_ids": [2, 3]}
    # a guardrail-style redaction of the prompt (Strands' update_message) takes the memory along
    redacted = {"message_id": 2, "message": {"role": "user", "content": [{"text": "[redacted]"}]}}
    r = httpx.put(f"{agent_settings.backend_url}/v1/sessions/{sid}/agents/default/messages/2", json=redacted)
    assert r.status_code == 200, r.text
    assert service.get(f"/api/v1/actors/{actor}/memories").json()["items"] == []


def test_memories_routes(service: TestClient) -> None:
    actor = f"actor-m-{uuid.uuid4().hex[:6]}"
    path = f"/api/v1/actors/{actor}/memories"
    r = service.post(path, json={"content": "Prefers tea over coffee", "metadata": {"source": "test"}})
    assert r.status_code == 201, r.text
    tea = r.json()
    assert tea["content"] == "Prefers tea over coffee" and tea["metadata"] == {"source": "test"}
    assert tea["score"] is None and tea["created_at"]
    assert service.post(path, json={"content": "Prefers tea over coffee"}).json()["memory_id"] == tea["memory_id"]
    service.post(path, json={"content": "Lives near the sea"})
    newest = service.get(path).json()["items"]
    assert [m["content"] for m in newest] == ["Lives near the sea", "Prefers tea over coffee"]
    found = service.get(path, params={"query": "what does she drink, tea?", "limit": 5}).json()["items"]
    assert [m["memory_id"] for m in found] == [tea["memory_id"]] and found[0]["score"] > 0
    assert service.get(f"/api/v1/actors/other-{actor}/memories").json()["items"] == []
    assert service.delete(f"/api/v1/actors/other-{actor}/memories/{tea['memory_id']}").status_code == 404

    assert service.delete(f"{path}/{tea['memory_id']}").status_code == 204
    assert_problem(service.delete(f"{path}/{tea['memory_id']}"), 404, "not found")
    assert [m["content"] for m in service.get(path).json()["items"]] == ["Lives near the sea"]
    assert_problem(service.delete(f"{path}/not-a-uuid"), 422)
    assert_problem(service.post(path, json={"content": "  "}), 422)
    assert_problem(service.post(path, json={"content": "x", "extra": 1}), 422)
    assert_problem(service.get("/api/v1/actors/bad%20id/memories"), 422, "actor_id")
    assert_problem(service.get(path, params={"limit": 0}), 422)


def test_invoke_with_a_device_continues_its_session_of_that_profile(service: TestClient) -> None:
    agent_id = create_profile(service)["agent_id"]
    other_id = create_profile(service, name="Other")["agent_id"]
    device, stranger = str(uuid.uuid4()), str(uuid.uuid4())

    def device_invoke(agent: str, prompt: str, dev: str, **fields: Any) -> Any:
        return service.post(
            f"/api/v1/agents/{agent}/invoke", json={"prompt": prompt} | fields, headers={"X-Device-ID": dev}
        )

    first = device_invoke(agent_id, "hello", device)
    assert first.status_code == 200, first.text
    session_id = first.json()["session_id"]
    again = device_invoke(agent_id, "again", device)
    assert again.json()["session_id"] == session_id and again.json()["status"]["conversation_length"] == 4
    # another profile: the device's session of this profile is not taken over; a new one starts
    assert device_invoke(other_id, "hi", device).json()["session_id"] != session_id
    # another device never reaches it, and ids that are not UUIDs are refused
    assert_problem(device_invoke(agent_id, "mine?", stranger, session_id=session_id), 404)
    assert_problem(device_invoke(agent_id, "x", "not-a-uuid"), 422)
    assert_problem(device_invoke(agent_id, "x", device, actor_id="someone-else"), 422)
