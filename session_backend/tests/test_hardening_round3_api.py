"""Hardening round 3 (issue 28), session backend: the reproducing tests of its findings, on a real backend process
through its public HTTP surface (so they survive a restructure).

Each test asserts the behaviour the issue asks for and is `xfail(strict=True)` while the finding stands: the fix
removes the marker. The agent-service findings (and item 6, which needs an agent for its retried turn) are in
`test_session_agent/tests/test_hardening_round3.py`. This module is `_api` (as `test_hardening_api.py`): pytest
refuses two test modules of one name.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

KEY = "backend-key-0123456789"


def is_problem(r: httpx.Response, status: int) -> bool:
    return r.status_code == status and r.headers.get("content-type", "").startswith("application/problem+json")


def nested_json(depth: int) -> str:
    """`{"a": {"a": ... "leaf" ...}}` nested `depth` levels, as text (the client's encoder would refuse to build it)."""
    return '{"a": ' * depth + '"leaf"' + "}" * depth


@pytest.fixture(scope="module")
def keyed_backend(
    database_url: str, service_runner: Any, port_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A backend process on this module's database requiring `Authorization: Bearer <KEY>`."""
    port = port_factory()
    url = f"http://127.0.0.1:{port}"
    env = {"DATABASE_URL": database_url, "PORT": str(port), "SESSION_BACKEND_API_KEY": KEY}
    log: Path = tmp_path_factory.mktemp("round3") / "backend.log"
    with service_runner("session-backend", env, url, health="/health", log=log):
        yield url


def test_deeply_nested_json_is_422_problem_on_the_backend(backend_url: str) -> None:
    """Bodies nested 1,000 and 100,000 levels deep (session metadata, a message, a raw body) are refused with 422
    problem+json and nothing is stored; the backend keeps answering."""
    headers = {"content-type": "application/json"}
    sid = f"r3-deep-{uuid.uuid4().hex[:8]}"
    for depth in (1000, 100_000):
        body = f'{{"session_id": "{sid}", "session_type": "AGENT", "metadata": {nested_json(depth)}}}'
        r = httpx.post(f"{backend_url}/v1/sessions", content=body, headers=headers, timeout=30)
        assert is_problem(r, 422), (depth, r.status_code, r.text[:300])
        r = httpx.post(f"{backend_url}/v1/sessions", content=nested_json(depth), headers=headers, timeout=30)
        assert is_problem(r, 422), (depth, r.status_code, r.text[:300])
    assert httpx.get(f"{backend_url}/v1/sessions/{sid}").status_code == 404

    created = httpx.post(f"{backend_url}/v1/sessions", json={"session_id": sid, "session_type": "AGENT"})
    assert created.status_code == 201, created.text
    agent = {"agent_id": "default", "state": {}, "conversation_manager_state": {}}
    assert httpx.post(f"{backend_url}/v1/sessions/{sid}/agents", json=agent).status_code == 201
    message = f'{{"message_id": 0, "message": {{"role": "user", "content": [{nested_json(1000)}]}}}}'
    r = httpx.post(f"{backend_url}/v1/sessions/{sid}/agents/default/messages", content=message, headers=headers)
    assert is_problem(r, 422), (r.status_code, r.text[:300])
    assert httpx.get(f"{backend_url}/v1/sessions/{sid}/agents/default/messages").json() == []
    assert httpx.get(f"{backend_url}/ready").status_code == 200


def test_docs_need_the_key_on_the_backend(keyed_backend: str) -> None:
    """With `SESSION_BACKEND_API_KEY` set, `/docs`, `/redoc` and `/openapi.json` answer 401 without the key (or with a
    wrong one) and 200 with it (a setting may open them; not tested here); `/health` stays open."""
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert httpx.get(f"{keyed_backend}{path}").status_code == 401, path
        wrong = httpx.get(f"{keyed_backend}{path}", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401, path
        right = httpx.get(f"{keyed_backend}{path}", headers={"Authorization": f"Bearer {KEY}"})
        assert right.status_code == 200, path
    assert json.loads(httpx.get(f"{keyed_backend}/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).text)
    assert httpx.get(f"{keyed_backend}/health").status_code == 200
