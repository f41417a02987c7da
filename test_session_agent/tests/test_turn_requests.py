"""The backend requests of one agent-service turn, counted by the backend's own /metrics on real processes: take the
lease, commit the batch, and nothing more: the lease ends inside the commit."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_session_agent.testing import scripted_agent_env

pytestmark = pytest.mark.integration

ROUTES = {
    ("POST", "/v1/sessions/{session_id}/lease"): "take lease",
    ("DELETE", "/v1/sessions/{session_id}/lease"): "release lease",
    ("POST", "/v1/sessions/{session_id}/batch"): "batch",
}


def _requests(backend_url: str) -> dict[str, float]:
    text = httpx.get(f"{backend_url}/metrics", timeout=10).text
    counts = dict.fromkeys(ROUTES.values(), 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != "http_requests_total":
                continue
            name = ROUTES.get((sample.labels.get("method", ""), sample.labels.get("handler", "")))
            if name is not None:
                counts[name] += sample.value
    return counts


def test_a_turn_takes_the_lease_and_commits_in_two_requests(
    backend_url: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    env, url = scripted_agent_env(backend_url, port_factory())
    sid = f"req-{uuid.uuid4().hex[:8]}"
    with service_runner("test-session-agent", env, url, log=tmp_path / "agent.log"):
        assert httpx.post(f"{url}/process", json={"prompt": "first", "session_id": sid}, timeout=30).status_code == 200
        before = _requests(backend_url)
        for n in range(3):
            r = httpx.post(f"{url}/process", json={"prompt": f"turn {n}", "session_id": sid}, timeout=30)
            assert r.status_code == 200, r.text
            # The lease is free the moment the turn is answered: another writer takes it at once.
            other = httpx.post(
                f"{backend_url}/v1/sessions/{sid}/lease", json={"owner": "another-process", "ttl_seconds": 30}
            )
            assert other.status_code == 200, other.text
            released = httpx.request(
                "DELETE", f"{backend_url}/v1/sessions/{sid}/lease", params={"owner": "another-process"}
            )
            assert released.status_code == 204
        after = _requests(backend_url)
    per_turn = {name: (after[name] - before[name]) / 3 for name in after}
    # The other writer's take and release above count once per turn each.
    assert per_turn == {"take lease": 2.0, "batch": 1.0, "release lease": 1.0}, per_turn
    history = httpx.get(f"{backend_url}/v1/sessions/{sid}/agents/default/messages", timeout=10).json()
    assert [m["message"]["content"][0]["text"] for m in history if m["message"]["role"] == "user"] == [
        "first",
        "turn 0",
        "turn 1",
        "turn 2",
    ]
