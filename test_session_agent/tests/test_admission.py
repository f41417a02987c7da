"""Turn admission on a real agent-service process (scripted model with a delay): a burst beyond the bounds is refused
at once with 503 + Retry-After on every turn path (`/process`, `/process-streaming`, invoke, invoke-streaming,
`/ws`), one actor's flood with 429; admitted turns all complete and are stored exactly once; below the bounds nothing
is refused."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from test_session_agent.testing import scripted_agent_env

pytestmark = pytest.mark.integration

RUNNING, QUEUED, PER_ACTOR = 2, 3, 2
WAIT = 120.0  # seconds: the deadline of every poll


@pytest.fixture(scope="module")
def agent_url(backend_url: str, service_runner: Any, port_factory: Any, tmp_path_factory: Any) -> Iterator[str]:
    # Turns last long enough (a 3 s model) for a burst sent at once to find the places taken.
    env, url = scripted_agent_env(
        backend_url,
        port_factory(),
        LOG_LEVEL="warning",
        AGENT_MAX_TURNS_RUNNING=str(RUNNING),
        AGENT_MAX_TURNS_QUEUED=str(QUEUED),
        AGENT_MAX_TURNS_PER_ACTOR=str(PER_ACTOR),
        SCRIPTED_FIRST_TOKEN_DELAY_MS="3000",
    )
    log: Path = tmp_path_factory.mktemp("agent") / "agent.log"
    with service_runner("test-session-agent", env, url, log=log):
        yield url


def _metric(url: str, name: str, labels: str = "") -> float:
    text = httpx.get(f"{url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + (labels or "")) and (labels or line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _idle(url: str) -> None:
    """Wait until no turn runs or waits in the process (the previous test's turns have all released their places)."""
    end = time.monotonic() + WAIT
    while _metric(url, "agent_turns_in_progress") or _metric(url, "agent_turns_queued"):
        assert time.monotonic() < end, "turns still in progress"
        time.sleep(0.1)


async def _turn(client: httpx.AsyncClient, path: str, session_id: str, actor_id: str) -> tuple[httpx.Response, str]:
    """One turn; returns the response and, for a streamed one, the final event's JSON (else the body)."""
    body = {"prompt": f"hello from {actor_id}", "actor_id": actor_id}
    if "/invoke" not in path:  # an invoke turn without a session starts one of its profile
        body["session_id"] = session_id
    if path.endswith("-streaming"):
        async with client.stream("POST", path, json=body) as r:
            text = (await r.aread()).decode()
        events = [line[len("data:") :].strip() for line in text.splitlines() if line.startswith("data:")]
        return r, events[-1] if events else text
    r = await client.post(path, json=body)
    return r, r.text


def _stored(url: str, session_id: str) -> int:
    r = httpx.get(f"{url}/sessions/{session_id}/history")
    return len(r.json()["messages"]) if r.status_code == 200 else 0


def _burst(url: str, turns: list[tuple[str, str, str]]) -> list[tuple[httpx.Response, str]]:
    async def run() -> list[tuple[httpx.Response, str]]:
        limits = httpx.Limits(max_connections=len(turns))
        async with httpx.AsyncClient(base_url=url, timeout=WAIT, limits=limits) as client:
            return await asyncio.gather(*(_turn(client, *t) for t in turns))

    return asyncio.run(run())


def _check_refusal(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == status


def _check_admitted(url: str, r: httpx.Response, last: str) -> None:
    assert r.status_code == 200, last
    done = orjson.loads(last)
    assert done.get("type", "done") == "done" and done["response"], last
    assert _stored(url, done["session_id"]) == 2  # the prompt and the reply, once


def test_burst_beyond_the_bounds_is_refused_with_503_and_admitted_turns_complete(agent_url: str) -> None:
    _idle(agent_url)
    before = _metric(agent_url, "agent_turns_refused_total", '{reason="full"}')
    profile = httpx.post(f"{agent_url}/api/v1/agents", json={"name": "burst"})
    assert profile.status_code == 201, profile.text
    invoke = f"/api/v1/agents/{profile.json()['agent_id']}/invoke"
    paths = ["/process", "/process-streaming", invoke, f"{invoke}-streaming"]
    turns = [(paths[n % 4], uuid.uuid4().hex, f"burst-{n}") for n in range(20)]
    answers = _burst(agent_url, turns)
    refused = [(t, r) for t, (r, _) in zip(turns, answers, strict=True) if r.status_code != 200]
    assert refused, "a burst of 20 against 2 running and 3 queued places refused nothing"
    assert len(refused) <= len(turns) - RUNNING - QUEUED
    for (path, session_id, _), r in refused:
        _check_refusal(r, 503)
        if "/invoke" not in path:
            assert _stored(agent_url, session_id) == 0, path  # refused before any work: nothing stored
    for (_, _, _), (r, last) in zip(turns, answers, strict=True):
        if r.status_code == 200:
            _check_admitted(agent_url, r, last)
    assert _metric(agent_url, "agent_turns_refused_total", '{reason="full"}') - before == len(refused)


def test_one_actor_flooding_gets_429_while_others_are_served(agent_url: str) -> None:
    _idle(agent_url)
    before = _metric(agent_url, "agent_turns_refused_total", '{reason="actor"}')
    flood = [("/process", uuid.uuid4().hex, "flooder") for _ in range(6)]
    other = [("/process-streaming", uuid.uuid4().hex, "calm")]
    answers = _burst(agent_url, flood + other)
    flood_answers = answers[: len(flood)]
    too_many = [r for r, _ in flood_answers if r.status_code == 429]
    assert too_many, "six turns of one actor at once against a bound of 2 refused none with 429"
    for r in too_many:
        _check_refusal(r, 429)
    for r, last in answers:
        if r.status_code != 429:
            _check_admitted(agent_url, r, last)
    assert answers[-1][0].status_code == 200  # the other actor is not refused for the flooder's turns
    assert _metric(agent_url, "agent_turns_refused_total", '{reason="actor"}') - before == len(too_many)


def test_below_the_bounds_nothing_is_refused(agent_url: str) -> None:
    _idle(agent_url)
    before = _metric(agent_url, "agent_turns_refused_total")
    paths = ["/process", "/process-streaming"]
    turns = [(paths[n % 2], uuid.uuid4().hex, f"calm-{n}") for n in range(RUNNING + QUEUED)]
    for r, last in _burst(agent_url, turns):
        _check_admitted(agent_url, r, last)
    assert _metric(agent_url, "agent_turns_refused_total") == before


def test_ws_messages_pass_through_admission(agent_url: str) -> None:
    """A WebSocket message is a turn too: refused with an `error` event (the socket stays open) when the process is
    full, answered once places are free."""
    _idle(agent_url)

    async def scenario() -> None:
        session_id = uuid.uuid4().hex
        ws_url = agent_url.replace("http", "ws", 1) + f"/ws/{session_id}?actor_id=ws-actor"
        turns = [("/process", uuid.uuid4().hex, f"filler-{n}") for n in range(RUNNING + QUEUED)]
        async with httpx.AsyncClient(base_url=agent_url, timeout=WAIT) as client, connect(ws_url) as ws:
            assert orjson.loads(await ws.recv())["type"] == "start"
            fill = [asyncio.create_task(_turn(client, *t)) for t in turns]
            await _until(lambda: _metric(agent_url, "agent_turns_queued") == QUEUED)
            await ws.send(orjson.dumps({"type": "text", "text": "hello"}).decode())
            refusal = orjson.loads(await ws.recv())
            assert (refusal["type"], refusal["status"]) == ("error", 503) and refusal["retry_after"] >= 1
            await asyncio.gather(*fill)
            await ws.send(orjson.dumps({"type": "text", "text": "hello again"}).decode())
            while (event := orjson.loads(await ws.recv()))["type"] == "text":
                pass
            assert event["type"] == "done", event

    asyncio.run(scenario())


async def _until(check: Callable[[], bool]) -> None:
    end = time.monotonic() + WAIT
    while not await asyncio.to_thread(check):
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.05)
