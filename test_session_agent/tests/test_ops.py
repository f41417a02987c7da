"""Identity, routing, operations on real processes: device continuity and isolation, sliding expiry, active-agent
routing across two agent processes, the stateless fallback while the backend is stopped, `/metrics` and JSON logs."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_session_agent.testing import scripted_agent_env

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _agent_env(backend_url: str, port: int, **extra: str) -> dict[str, str]:
    return scripted_agent_env(backend_url, port, SESSION_BACKEND_API_KEY="", **extra)[0]


def _backend_env(database_url: str, port: int) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "SESSION_BACKEND_API_KEY": "",
        "SESSION_BACKEND_SWEEP_INTERVAL_SECONDS": "0.3",
    }


@pytest.fixture(scope="module")
def stack(
    database_url: str, service_runner: Any, port_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A backend (sweeping every 0.3 s) and two agent processes on it."""
    logs = tmp_path_factory.mktemp("ops")
    ports = [port_factory() for _ in range(3)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    with (
        service_runner(
            "session-backend", _backend_env(database_url, ports[0]), urls[0], health="/ready", log=logs / "b"
        ),
        service_runner("test-session-agent", _agent_env(urls[0], ports[1]), urls[1], log=logs / "a1"),
        service_runner("test-session-agent", _agent_env(urls[0], ports[2]), urls[2], log=logs / "a2"),
    ):
        yield {"backend": urls[0], "agent1": urls[1], "agent2": urls[2]}


def _turn(url: str, prompt: str, *, session_id: str | None = None, device: str | None = None, **kw: Any) -> Any:
    body: dict[str, Any] = {"prompt": prompt}
    if session_id is not None:
        body["session_id"] = session_id
    headers = dict(kw.pop("headers", {}))
    if device is not None:
        headers["X-Device-ID"] = device
    return httpx.post(f"{url}/process", json=body, headers=headers, timeout=60, **kw)


def _user_texts(url: str, session_id: str) -> list[str]:
    r = httpx.get(f"{url}/sessions/{session_id}/history")
    assert r.status_code == 200, r.text
    return [m["content"][0]["text"] for m in r.json()["messages"] if m["role"] == "user" and "text" in m["content"][0]]


def _samples(url: str) -> Samples:
    r = httpx.get(f"{url}/metrics")
    assert r.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _session_count(backend: str) -> int:
    return len(httpx.get(f"{backend}/v1/sessions", params={"limit": 1000}).json()["items"])


def test_device_continuity_and_isolation(stack: dict[str, str]) -> None:
    agent, backend = stack["agent1"], stack["backend"]
    before = _session_count(backend)
    for bad in ("not-a-uuid", "1234", ""):
        r = _turn(agent, "hello", device=bad)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", (bad, r.text)
    r = httpx.post(f"{agent}/process-streaming", json={"prompt": "x"}, headers={"X-Device-ID": "nope"})
    assert r.status_code == 422
    assert _session_count(backend) == before  # nothing stored

    d1, d2 = str(uuid.uuid4()), str(uuid.uuid4())
    first = _turn(agent, "one", device=d1).json()
    sid1 = first["session_id"]
    second = _turn(stack["agent2"], "two", device=d1.upper()).json()  # any replica, any UUID spelling
    assert second["session_id"] == sid1 and second["response"].startswith("turn 2;")
    other = _turn(agent, "mine", device=d2).json()
    assert other["session_id"] != sid1 and other["response"].startswith("turn 1;")
    assert httpx.get(f"{backend}/v1/sessions/{sid1}").json()["actor_id"] == d1

    # another device reaches none of d1's session: not by id, not by an Idempotency-Key of d1's
    keyed = _turn(agent, "three", device=d1, headers={"Idempotency-Key": "k-1"})
    assert keyed.status_code == 200
    for headers in ({}, {"Idempotency-Key": "k-1"}):
        r = _turn(agent, "steal", session_id=sid1, device=d2, headers=headers)
        assert r.status_code == 404, r.text
        assert "three" not in r.text
    r = httpx.post(f"{agent}/process", json={"prompt": "x", "actor_id": d1}, headers={"X-Device-ID": d2})
    assert r.status_code == 422
    assert _user_texts(agent, sid1) == ["one", "two", "three"]
    assert _user_texts(agent, other["session_id"]) == ["mine"]

    # streaming continues the device's session too
    with httpx.stream(
        "POST", f"{agent}/process-streaming", json={"prompt": "four"}, headers={"X-Device-ID": d1}, timeout=60
    ) as r:
        events = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:")]
    assert events[0] == {"type": "start", "session_id": sid1}
    assert events[-1]["type"] == "done" and events[-1]["response"].startswith("turn 4;")


def test_active_agent_routes_turns_on_every_replica(stack: dict[str, str]) -> None:
    a1, a2, backend = stack["agent1"], stack["agent2"], stack["backend"]
    manager, specialist = f"manager-{uuid.uuid4().hex[:6]}", f"specialist-{uuid.uuid4().hex[:6]}"
    for agent_id, tools in ((manager, ["handoff"]), (specialist, [])):
        profile = {"agent_id": agent_id, "name": agent_id, "system_prompt": f"You are {agent_id}.", "tools": tools}
        assert httpx.post(f"{backend}/v1/agent-profiles", json=profile).status_code == 201
    sid = _turn(a1, "hello").json()["session_id"]
    path = f"/api/v1/sessions/{sid}/active-agent"
    assert httpx.get(f"{a1}{path}").status_code == 404
    assert httpx.put(f"{a1}{path}", json={"agent_id": "no-such-profile"}).status_code == 422
    assert httpx.put(f"{a1}/api/v1/sessions/nope/active-agent", json={"agent_id": manager}).status_code == 404

    assert httpx.put(f"{a2}{path}", json={"agent_id": manager}).status_code == 200
    r = _turn(a1, "who answers?", session_id=sid).json()
    assert r["status"]["agent_id"] == manager and r["response"].startswith("turn 2;")

    # the manager hands the conversation to the specialist with its built-in tool, on process 1 ...
    r = _turn(a1, f'use handoff {{"agent_id": "{specialist}"}}', session_id=sid)
    assert r.status_code == 200 and "handoff returned" in r.json()["response"], r.text
    active = httpx.get(f"{a1}{path}").json()
    assert active["agent_id"] == specialist and active["expires_at"] is not None  # ACTIVE_AGENT_TTL_SECONDS
    # ... and process 2 routes the next turn there, with the whole conversation
    r = _turn(a2, "and now?", session_id=sid).json()
    assert r["status"]["agent_id"] == specialist and r["response"].startswith("turn 4;")

    assert httpx.delete(f"{a1}{path}").status_code == 204
    assert httpx.delete(f"{a1}{path}").status_code == 404
    assert _turn(a2, "back home?", session_id=sid).json()["status"]["agent_id"] == "default"

    # a TTL returns the session to its own profile by itself
    r = httpx.put(f"{a2}{path}", json={"agent_id": specialist, "ttl_seconds": 1})
    assert r.status_code == 200 and r.json()["expires_at"] is not None
    assert _turn(a1, "specialist?", session_id=sid).json()["status"]["agent_id"] == specialist
    time.sleep(1.3)
    r = _turn(a1, "default again?", session_id=sid).json()
    assert r["status"]["agent_id"] == "default" and r["response"].startswith("turn 7;")

    # sessions per active agent, on the backend's metrics
    httpx.put(f"{a1}{path}", json={"agent_id": specialist})
    time.sleep(1.1)  # the backend re-reads its database counts at most once a second
    assert _value(_samples(backend), "session_backend_sessions_per_active_agent", agent_id=specialist) == 1


def test_metrics_counters_move(stack: dict[str, str]) -> None:
    agent, backend = stack["agent1"], stack["backend"]
    a0, b0 = _samples(agent), _samples(backend)
    sid = _turn(agent, "count me").json()["session_id"]
    _turn(agent, "again", session_id=sid)
    assert _turn(agent, "x", session_id=sid, device=str(uuid.uuid4())).status_code == 404
    time.sleep(1.1)
    a1, b1 = _samples(agent), _samples(backend)

    def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved(a0, a1, "http_requests_total", handler="/process", method="POST", status="2xx") == 2
    assert moved(a0, a1, "http_requests_total", handler="/process", method="POST", status="4xx") == 1
    assert moved(a0, a1, "agent_turns_total", outcome="ok") == 2
    assert moved(a0, a1, "agent_turns_total", outcome="SessionNotFoundError") == 1
    assert moved(a0, a1, "agent_cache_lookups_total", result="hit") >= 1
    assert moved(a0, a1, "agent_cache_lookups_total", result="miss") >= 1
    assert moved(a0, a1, "agent_turn_duration_seconds_count") == 2
    assert _value(a1, "agent_cache_size") >= 1
    assert moved(a0, a1, "http_request_duration_seconds_count", handler="/process", method="POST") == 3
    batch = "/v1/sessions/{session_id}/batch"
    assert moved(b0, b1, "http_requests_total", handler=batch, method="POST", status="2xx") == 2
    assert _value(b1, "session_backend_active_sessions") >= 1
    assert ("session_backend_active_leases", ()) in b1
    assert ("session_backend_db_pool_connections", (("state", "in_use"),)) in b1


def test_sliding_expiry_then_swept(
    stack: dict[str, str], service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    backend = stack["backend"]
    port = port_factory()
    url = f"http://127.0.0.1:{port}"
    env = _agent_env(backend, port, SESSION_DEFAULT_TTL_SECONDS="2")
    with service_runner("test-session-agent", env, url, log=tmp_path / "agent.log"):
        device = str(uuid.uuid4())
        sid = _turn(url, "t1", device=device).json()["session_id"]
        created = time.monotonic()
        for n in range(2, 5):  # 3.6 s in all: beyond the TTL from creation, never beyond it from the last turn
            time.sleep(1.2)
            r = _turn(url, f"t{n}", device=device).json()
            assert r["session_id"] == sid and r["response"].startswith(f"turn {n};"), r
        assert time.monotonic() - created > 2
        swept_before = _value(_samples(backend), "session_backend_expired_sessions_deleted_total")
        time.sleep(2.8)  # past the TTL after the last turn, and a sweep
        assert httpx.get(f"{backend}/v1/sessions/{sid}").status_code == 404
        assert _value(_samples(backend), "session_backend_expired_sessions_deleted_total") > swept_before
        r = _turn(url, "fresh", device=device).json()
        assert r["session_id"] != sid and r["response"].startswith("turn 1;")


def test_stateless_fallback_while_backend_stopped_then_managed_again(
    database_url: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    backend_port, agent_port = port_factory(), port_factory()
    backend_url, agent_url = f"http://127.0.0.1:{backend_port}", f"http://127.0.0.1:{agent_port}"
    agent_env = _agent_env(
        backend_url, agent_port, SESSION_FALLBACK="stateless", SESSION_FALLBACK_RETRY_SECONDS="0.5", LOG_FORMAT="json"
    )
    log = tmp_path / "agent.log"
    device = str(uuid.uuid4())
    with service_runner("test-session-agent", agent_env, agent_url, log=log):
        with service_runner("session-backend", _backend_env(database_url, backend_port), backend_url, health="/ready"):
            r = _turn(agent_url, "one", device=device)
            assert r.status_code == 200 and "x-session-degraded" not in r.headers
            sid = r.json()["session_id"]
        # backend stopped: answered without history, marked, nothing stored
        for _ in range(2):  # the first finds the backend down, the next answers at once from the fallback window
            r = _turn(agent_url, "two", device=device)
            assert r.status_code == 200, r.text
            assert r.headers["x-session-degraded"] == "stateless"
            assert r.json()["status"]["session_managed"] is False
            assert r.json()["response"].startswith("turn 1;")  # no history
        assert _turn(agent_url, "named", session_id=sid).json()["session_id"] == sid
        with httpx.stream(
            "POST", f"{agent_url}/process-streaming", json={"prompt": "s", "session_id": sid}, timeout=60
        ) as stream:
            events = [json.loads(line[5:]) for line in stream.iter_lines() if line.startswith("data:")]
        assert events[-1]["type"] == "done" and events[-1]["status"]["session_managed"] is False
        time.sleep(0.6)  # past the fallback window: the next turn tries the backend again
        with service_runner("session-backend", _backend_env(database_url, backend_port), backend_url, health="/ready"):
            r = _turn(agent_url, "three", device=device)
            assert r.status_code == 200 and "x-session-degraded" not in r.headers
            assert r.json()["session_id"] == sid and r.json()["status"]["session_managed"] is True
            assert r.json()["response"].startswith("turn 2;")
            time.sleep(1.5)  # nothing of the stateless turns arrives later
            assert _user_texts(agent_url, sid) == ["one", "three"]
            metrics = _samples(agent_url)
            assert _value(metrics, "agent_turns_total", outcome="stateless") == 4
            assert _value(metrics, "agent_backend_errors_total", kind="BackendUnavailableError") >= 1
    # structured logs: JSON lines carrying the turn's session, actor and device ids
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    degraded = [r for r in records if "without a session" in r["message"]]
    assert degraded and degraded[0]["device_id"] == device and degraded[0]["actor_id"] == device
    assert degraded[0]["session_id"] and degraded[0]["level"] == "WARNING"
