"""Two agent-service processes, 50 concurrent /process calls each, all on one session: the stored history holds
exactly the acknowledged turns, in user/assistant alternation, with no duplicate message ids."""

from __future__ import annotations

import concurrent.futures
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from test_session_agent import PostgreSQLSessionRepository

pytestmark = pytest.mark.integration

CALLS_PER_PROCESS = 50


@pytest.mark.slow  # 100 racing turns: `make test` runs it, `pytest -m "not slow"` skips it
def test_two_processes_fifty_concurrent_turns_each_on_one_session(
    backend_url: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    session_id = f"race-{uuid.uuid4().hex[:8]}"
    ports = [port_factory(), port_factory()]
    env = {
        "SESSION_BACKEND_URL": backend_url,
        "MODEL_PROVIDER": "scripted",
        "SESSION_WAIT_SECONDS": "120",
        "SCRIPTED_FIRST_TOKEN_DELAY_MS": "2",
    }
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    with (
        service_runner("test-session-agent", env | {"PORT": str(ports[0])}, urls[0], log=tmp_path / "a.log"),
        service_runner("test-session-agent", env | {"PORT": str(ports[1])}, urls[1], log=tmp_path / "b.log"),
    ):

        def turn(job: tuple[str, str]) -> tuple[str, int]:
            url, prompt = job
            r = httpx.post(f"{url}/process", json={"prompt": prompt, "session_id": session_id}, timeout=180)
            return prompt, r.status_code

        jobs = [(url, f"prompt {n}-{i}") for n, url in enumerate(urls) for i in range(CALLS_PER_PROCESS)]
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            outcomes = list(pool.map(turn, jobs))

    acknowledged = {prompt for prompt, status in outcomes if status == 200}
    refused = [status for _, status in outcomes if status != 200]
    assert all(status in (409, 503) for status in refused), refused

    repo = PostgreSQLSessionRepository(base_url=backend_url)
    stored = repo.list_messages(session_id, "default")
    repo.close()
    ids = [m.message_id for m in stored]
    roles = [m.message["role"] for m in stored]
    user_texts = [m.message["content"][0]["text"] for m in stored if m.message["role"] == "user"]
    tool_uses = {b["toolUse"]["toolUseId"] for m in stored for b in m.message["content"] if "toolUse" in b}
    tool_results = {b["toolResult"]["toolUseId"] for m in stored for b in m.message["content"] if "toolResult" in b}

    lost = acknowledged - set(user_texts)
    duplicated = len(user_texts) - len(set(user_texts))
    print(
        f"turns attempted={len(jobs)} acknowledged={len(acknowledged)} stored={len(user_texts)} "
        f"lost={len(lost)} duplicated={duplicated} refused={len(refused)}"
    )
    assert ids == list(range(len(stored))), "message ids must be 0..n-1 without gaps or duplicates"
    assert roles == ["user", "assistant"] * (len(stored) // 2) and len(stored) % 2 == 0
    assert set(user_texts) == acknowledged and not lost and duplicated == 0
    assert tool_results <= tool_uses
    assert len(acknowledged) >= CALLS_PER_PROCESS  # most turns get through; refusals are clean 409s
