"""Hardening round 3 (issue 28), agent service: one reproducing test per finding, on real processes, through the public
HTTP / SSE / WebSocket surfaces only (SQL where a table must be looked at), so they survive a restructure.

Each test asserts the behaviour the issue asks for and is `xfail(strict=True)` while the finding stands: the fix
removes the marker. Where the issue leaves the behaviour open, the test's docstring says what it expects.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from test_session_agent.testing import scripted_agent_env

pytestmark = pytest.mark.integration

ALICE, BOB = "alice-key-0123456789", "bob-key-9876543210"
KEYS = f"{ALICE}:alice,{BOB}:bob"
WAIT = 60.0  # seconds: the deadline of every poll


def xfail(item: int, reason: str) -> pytest.MarkDecorator:
    """The marker of a finding that still reproduces (strict: the fix must remove it)."""
    return pytest.mark.xfail(strict=True, reason=f"issue 28 item {item}: {reason}")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def poll(check: Callable[[], bool], what: str, deadline: float = WAIT) -> None:
    """Wait until `check()` is true, or fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"not within {deadline} s: {what}")
        time.sleep(0.1)


def sql(database_url: str, query: str, *args: Any) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchval(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def is_problem(r: httpx.Response, status: int) -> bool:
    return r.status_code == status and r.headers.get("content-type", "").startswith("application/problem+json")


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def user_texts(url: str, session_id: str, headers: dict[str, str] | None = None) -> list[str]:
    r = httpx.get(f"{url}/sessions/{session_id}/history", headers=headers or {}, timeout=30)
    assert r.status_code == 200, r.text
    return [b["text"] for m in r.json()["messages"] if m["role"] == "user" for b in m["content"] if "text" in b]


def roles(url: str, session_id: str) -> list[str]:
    r = httpx.get(f"{url}/sessions/{session_id}/history", timeout=30)
    assert r.status_code == 200, r.text
    return [m["role"] for m in r.json()["messages"]]


def sse_events(url: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[Any]:
    with httpx.stream("POST", f"{url}{path}", json=body, headers=headers or {}, timeout=300) as r:
        assert r.status_code == 200, r.read()
        return [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:")]


@pytest.fixture(scope="module")
def sweeping_backend(
    database_url: str, service_runner: Any, port_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A backend on this module's database that sweeps expired sessions every 0.3 s."""
    port = port_factory()
    url = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "SESSION_BACKEND_API_KEY": "",
        "SESSION_BACKEND_SWEEP_INTERVAL_SECONDS": "0.3",
    }
    log = tmp_path_factory.mktemp("round3") / "backend.log"
    with service_runner("session-backend", env, url, health="/ready", log=log):
        yield url


@pytest.fixture
def agent(sweeping_backend: str, service_runner: Any, port_factory: Any, tmp_path: Path) -> Callable[..., Any]:
    """`agent(**env)`: a context manager running an agent process (scripted model) on the sweeping backend."""

    def start(**env: str) -> Any:
        port = port_factory()
        environment, url = scripted_agent_env(sweeping_backend, port, SESSION_BACKEND_API_KEY="", **env)
        return service_runner("test-session-agent", environment, url, log=tmp_path / f"agent-{port}.log"), url

    return start


# ---------------------------------------------------------------------------------------------------------- HIGH


@xfail(1, "the sweeper leaves session/<id>/ storage objects; a fork under the reused id lists the old snapshots")
def test_expired_snapshot_session_does_not_leak_to_next_owner(
    agent: Callable[..., Any], sweeping_backend: str, database_url: str
) -> None:
    """Alice's profile session (snapshot manager, 2 s TTL) expires and is swept: its snapshots and storage objects go
    with it. Bob then forks a session of his own into Alice's old id: the new session has only the snapshots of his
    fork, and nothing of Alice's conversation is readable through it (history, snapshots, forks of the snapshots)."""
    service, url = agent(SESSION_MANAGER="snapshot", SESSION_DEFAULT_TTL_SECONDS="2", AGENT_API_KEYS=KEYS)
    with service:
        r = httpx.post(f"{url}/api/v1/agents", json={"name": "alice-helper"}, headers=auth(ALICE), timeout=30)
        assert r.status_code == 201, r.text
        profile = r.json()["agent_id"]
        r = httpx.post(f"{url}/api/v1/sessions", params={"agent_id": profile}, headers=auth(ALICE), timeout=30)
        assert r.status_code == 201, r.text
        sid = r.json()["session_id"]
        r = httpx.post(
            f"{url}/api/v1/agents/{profile}/invoke",
            json={"prompt": "alice secret 4711", "session_id": sid},
            headers=auth(ALICE),
            timeout=60,
        )
        assert r.status_code == 200, r.text
        poll(lambda: httpx.get(f"{sweeping_backend}/v1/sessions/{sid}").status_code == 404, "Alice's session swept")
        # The sweep takes the session's storage objects (its snapshots) with it.
        poll(
            lambda: sql(database_url, "SELECT count(*) FROM storage_objects WHERE strpos(key, $1) > 0", sid) == 0,
            "the expired session's storage objects deleted",
            deadline=10,
        )

        r = httpx.post(f"{url}/process", json={"prompt": "bob here"}, headers=auth(BOB), timeout=60)
        assert r.status_code == 200, r.text
        bobs = r.json()["session_id"]
        bobs_snapshots = httpx.get(f"{url}/sessions/{bobs}/snapshots", headers=auth(BOB)).json()["items"]
        r = httpx.post(f"{url}/sessions/{bobs}/fork", json={"new_session_id": sid}, headers=auth(BOB), timeout=60)
        assert r.status_code == 201, r.text
        r = httpx.get(f"{url}/sessions/{sid}/snapshots", headers=auth(BOB), timeout=30)
        assert r.status_code == 200, r.text
        snapshots = r.json()["items"]
        assert len(snapshots) == len(bobs_snapshots), snapshots
        seen = [json.dumps(httpx.get(f"{url}/sessions/{sid}/history", headers=auth(BOB)).json())]
        for snapshot in snapshots:
            r = httpx.post(
                f"{url}/sessions/{sid}/fork",
                json={"snapshot_id": snapshot["snapshot_id"]},
                headers=auth(BOB),
                timeout=60,
            )
            assert r.status_code == 201, r.text
            fork = r.json()["session_id"]
            seen.append(json.dumps(httpx.get(f"{url}/sessions/{fork}/history", headers=auth(BOB)).json()))
    assert not [s for s in seen if "alice secret" in s]


@pytest.mark.slow
def test_reply_reaching_max_tokens_is_answered_and_stored_with_its_stop_reason(
    sweeping_backend: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    """The real local model with `MODEL_MAX_TOKENS=16` and prompts asking for long answers: `/process` answers 200 with
    what the model produced and `status.stop_reason == "max_tokens"`; the prompt and the partial reply are stored;
    the SSE `done` event of `/process-streaming` carries the same `status.stop_reason`."""
    port = port_factory()
    url = f"http://127.0.0.1:{port}"
    env = {
        "PORT": str(port),
        "SESSION_BACKEND_URL": sweeping_backend,
        "SESSION_BACKEND_API_KEY": "",
        "MODEL_PROVIDER": "local",
        "MODEL_MAX_TOKENS": "16",
    }
    with service_runner("test-session-agent", env, url, timeout=300, log=tmp_path / "agent.log"):
        prompt = "Write a story of at least 300 words about a lighthouse keeper and her cat."
        r = httpx.post(f"{url}/process", json={"prompt": prompt}, timeout=300)
        assert r.status_code == 200, r.text[:500]
        body = r.json()
        assert body["response"].strip()
        assert body["status"]["stop_reason"] == "max_tokens"
        history = httpx.get(f"{url}/sessions/{body['session_id']}/history", timeout=30).json()["messages"]
        assert [m["role"] for m in history] == ["user", "assistant"]
        assert history[0]["content"][0]["text"] == prompt
        assert "".join(b.get("text", "") for b in history[1]["content"]).strip() == body["response"].strip()

        events = sse_events(url, "/process-streaming", {"prompt": "Now list 100 names of sea birds, one per line."})
        done = events[-1]
        assert done["type"] == "done", events[-3:]
        assert done["response"].strip() and done["status"]["stop_reason"] == "max_tokens"


# ----------------------------------------------------------------------------------------------------------- MED


@xfail(3, "snapshot /process sessions get no expires_at; profile sessions' expiry does not slide")
def test_snapshot_sessions_slide_their_expiry_with_every_turn(agent: Callable[..., Any], sweeping_backend: str) -> None:
    """With `SESSION_MANAGER=snapshot` both kinds of session expire `SESSION_DEFAULT_TTL_SECONDS` after their last
    committed turn, as with the repository manager: a `/process` session has an `expires_at`, and every turn (of
    `/process` and of invoke) moves it later."""

    def expires_at(sid: str) -> Any:
        r = httpx.get(f"{sweeping_backend}/v1/sessions/{sid}")
        assert r.status_code == 200, r.text
        return r.json().get("expires_at")

    service, url = agent(SESSION_MANAGER="snapshot", SESSION_DEFAULT_TTL_SECONDS="3600")
    with service:
        r = httpx.post(f"{url}/process", json={"prompt": "one"}, timeout=60)
        assert r.status_code == 200, r.text
        sid = r.json()["session_id"]
        first = expires_at(sid)
        assert first is not None
        time.sleep(1.1)  # the clock moves on (no assertion on durations)
        assert httpx.post(f"{url}/process", json={"prompt": "two", "session_id": sid}, timeout=60).status_code == 200
        assert expires_at(sid) > first

        profile = httpx.post(f"{url}/api/v1/agents", json={"name": "sliding"}, timeout=30).json()["agent_id"]
        r = httpx.post(f"{url}/api/v1/sessions", params={"agent_id": profile}, timeout=30)
        assert r.status_code == 201, r.text
        profile_sid = r.json()["session_id"]
        created = expires_at(profile_sid)
        assert created is not None
        time.sleep(1.1)
        r = httpx.post(
            f"{url}/api/v1/agents/{profile}/invoke", json={"prompt": "hi", "session_id": profile_sid}, timeout=60
        )
        assert r.status_code == 200, r.text
        assert expires_at(profile_sid) > created


@xfail(4, "a session expires under a running turn: 404 at commit, the history is gone")
def test_session_does_not_expire_under_a_running_turn(agent: Callable[..., Any], sweeping_backend: str) -> None:
    """TTL 2 s, the model takes 4 s before its first token (a lower bound, whatever the load), the sweeper runs every
    0.3 s: a turn that started on a live session is committed (200) and the session with both turns survives it.
    Taking the lease (starting a turn) keeps the session alive for as long as the turn holds it."""
    service, url = agent(SESSION_DEFAULT_TTL_SECONDS="2", SCRIPTED_FIRST_TOKEN_DELAY_MS="4000")
    sid = f"r3-running-{uuid.uuid4().hex[:8]}"
    with service:
        for prompt in ("one", "two"):
            r = httpx.post(f"{url}/process", json={"prompt": prompt, "session_id": sid}, timeout=60)
            assert r.status_code == 200, r.text
        assert user_texts(url, sid) == ["one", "two"]


async def _ws_reply(ws: ClientConnection) -> dict[str, Any]:
    """Events up to the next `done` (or `error`) event; returns that event."""
    while True:
        event = orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))
        if event["type"] in ("done", "error"):
            return dict(event)


def test_idle_websocket_does_not_hold_the_session_lease(agent: Callable[..., Any]) -> None:
    """Chosen behaviour: `/ws` takes the session's lease per message, not per connection. With a socket open and idle
    on the session, an HTTP turn answers 200 (not 409 after `SESSION_WAIT_SECONDS`); the socket's next message then
    continues the conversation including that HTTP turn, and the stored history is the three turns in order."""
    service, url = agent(SESSION_WAIT_SECONDS="2")
    sid = f"r3-idle-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[int, str, dict[str, Any]]:
        async with connect(f"ws://{url.removeprefix('http://')}/ws/{sid}") as ws:
            assert orjson.loads(await ws.recv())["type"] == "start"
            await ws.send(orjson.dumps({"type": "text", "text": "ws one"}).decode())
            assert (await _ws_reply(ws))["type"] == "done"
            async with httpx.AsyncClient(timeout=60) as client:
                r = await client.post(f"{url}/process", json={"prompt": "http two", "session_id": sid})
            await ws.send(orjson.dumps({"type": "text", "text": "ws three"}).decode())
            return r.status_code, r.text, await _ws_reply(ws)

    with service:
        status, text, third = asyncio.run(scenario())
        assert status == 200, text
        assert third["type"] == "done" and third["response"].startswith("turn 3;"), third
        assert user_texts(url, sid) == ["ws one", "http two", "ws three"]


@pytest.mark.slow
@xfail(6, "the embedded PostgreSQL is not restarted after a crash: 503 until the backend is restarted")
def test_embedded_postgres_recovers_from_a_crash_by_itself(
    service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    """The default setup (`DATABASE_URL` unset: the backend runs the embedded PostgreSQL) and an agent on it. The
    postmaster is SIGKILLed: the backend restarts it by itself, `/ready` answers 200 again, and a turn retried with its
    Idempotency-Key until it succeeds is stored exactly once."""
    backend_port, agent_port = port_factory(), port_factory()
    backend = f"http://127.0.0.1:{backend_port}"
    backend_env = {
        "PORT": str(backend_port),
        "SESSION_BACKEND_API_KEY": "",
        "SESSION_BACKEND_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": "",
    }
    env, url = scripted_agent_env(backend, agent_port, SESSION_BACKEND_API_KEY="", SESSION_WAIT_SECONDS="5")
    sid = f"r3-crash-{uuid.uuid4().hex[:8]}"
    with (
        service_runner("session-backend", backend_env, backend, health="/ready", timeout=180, log=tmp_path / "b.log"),
        service_runner("test-session-agent", env, url, log=tmp_path / "agent.log"),
    ):
        assert httpx.post(f"{url}/process", json={"prompt": "one", "session_id": sid}, timeout=60).status_code == 200
        pid_files = list((tmp_path / "data").rglob("postmaster.pid"))
        assert len(pid_files) == 1, pid_files
        postmaster = int(pid_files[0].read_text().splitlines()[0])
        os.kill(postmaster, signal.SIGKILL)
        poll(lambda: httpx.get(f"{backend}/ready", timeout=5).status_code == 503, "the crash seen by /ready", 30)
        poll(lambda: httpx.get(f"{backend}/ready", timeout=5).status_code == 200, "/ready recovered by itself", WAIT)

        key = uuid.uuid4().hex
        statuses: list[int] = []

        def retried_turn() -> bool:
            r = httpx.post(
                f"{url}/process",
                json={"prompt": "two", "session_id": sid},
                headers={"Idempotency-Key": key},
                timeout=60,
            )
            statuses.append(r.status_code)
            return r.status_code == 200

        poll(retried_turn, f"the turn succeeds (statuses {statuses})", 30)
        assert user_texts(url, sid) == ["one", "two"]


def test_profile_max_tokens_is_capped_per_deployment(agent: Callable[..., Any]) -> None:
    """Chosen behaviour: `MODEL_MAX_TOKENS_CAP` (agent service) caps a profile's `max_tokens`; a profile asking for more
    is refused with 422 problem+json on create and update, at the cap it is accepted, and a deployment that sets no cap
    still refuses 1,000,000. (The other half of item 7, a fair or bounded local-model queue answering 503 with
    `Retry-After` when full, needs the real local model and has no test here: see the report.)"""
    plain, plain_url = agent()
    with plain:
        r = httpx.post(f"{plain_url}/api/v1/agents", json={"name": "greedy", "model_config": {"max_tokens": 1_000_000}})
        assert is_problem(r, 422), r.text
    capped, url = agent(MODEL_MAX_TOKENS_CAP="256")
    with capped:
        for too_many in (257, 1_000_000):
            r = httpx.post(f"{url}/api/v1/agents", json={"name": "greedy", "model_config": {"max_tokens": too_many}})
            assert is_problem(r, 422), r.text
        r = httpx.post(f"{url}/api/v1/agents", json={"name": "fair", "model_config": {"max_tokens": 256}})
        assert r.status_code == 201, r.text
        agent_id = r.json()["agent_id"]
        r = httpx.put(
            f"{url}/api/v1/agents/{agent_id}", json={"name": "fair", "model_config": {"max_tokens": 1_000_000}}
        )
        assert is_problem(r, 422), r.text


@pytest.mark.slow
def test_local_model_queue_is_bounded_with_503_and_retry_after(
    sweeping_backend: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    """Chosen behaviour: `LOCAL_MODEL_QUEUE_SIZE` (agent service) bounds the turns waiting for the local model's slot;
    a turn beyond it is refused at once with 503 problem+json and a `Retry-After` header, nothing stored. With 0, a
    turn of another actor arriving while one actor's long generation holds the slot gets that 503; once the slot is
    free it is served (200)."""
    port = port_factory()
    url = f"http://127.0.0.1:{port}"
    env = {
        "PORT": str(port),
        "SESSION_BACKEND_URL": sweeping_backend,
        "SESSION_BACKEND_API_KEY": "",
        "MODEL_PROVIDER": "local",
        "MODEL_MAX_TOKENS": "64",  # Alice's turn holds the slot for a while, and is short to wait for
        "LOCAL_MODEL_QUEUE_SIZE": "0",
    }
    bobs = f"r3-queue-{uuid.uuid4().hex[:8]}"
    with service_runner("test-session-agent", env, url, timeout=300, log=tmp_path / "agent.log"):
        long_turn = {"prompt": "Count from 1 to 300, one number per line.", "actor_id": "alice"}
        with httpx.stream("POST", f"{url}/process-streaming", json=long_turn, timeout=300) as stream:
            assert stream.status_code == 200
            for line in stream.iter_lines():
                if line.startswith("data:") and json.loads(line[5:])["type"] == "text":
                    break  # Alice's generation holds the slot
            r = httpx.post(f"{url}/process", json={"prompt": "hi", "session_id": bobs, "actor_id": "bob"}, timeout=300)
            assert is_problem(r, 503), (r.status_code, r.text[:300])
            assert int(r.headers["retry-after"]) >= 1
        assert httpx.get(f"{url}/sessions/{bobs}/history", timeout=30).status_code == 404
        poll(
            lambda: (
                httpx.post(
                    f"{url}/process", json={"prompt": "hi", "session_id": bobs, "actor_id": "bob"}, timeout=300
                ).status_code
                == 200
            ),
            "Bob's turn served once the slot is free",
            300,
        )


# ----------------------------------------------------------------------------------------------------------- LOW


@xfail(8, "memory metadata nested over 255 levels is a plain-text 500 on the agent")
def test_deeply_nested_memory_metadata_is_422_problem_on_the_agent(agent: Callable[..., Any]) -> None:
    """Memory metadata nested 300 and 1,000 levels deep is refused with 422 problem+json, and nothing is stored."""
    service, url = agent()
    actor = f"r3-nest-{uuid.uuid4().hex[:8]}"
    with service:
        for depth in (300, 1000):
            r = httpx.post(
                f"{url}/api/v1/actors/{actor}/memories",
                json={"content": "deep", "metadata": nested(depth)},
                timeout=30,
            )
            assert is_problem(r, 422), (depth, r.status_code, r.text[:300])
        assert httpx.get(f"{url}/api/v1/actors/{actor}/memories", timeout=30).json()["items"] == []


def test_model_failure_is_502_problem_without_provider_internals(agent: Callable[..., Any], port_factory: Any) -> None:
    """A profile on Bedrock whose endpoint refuses connections (a port nobody listens on): invoke and `/process` on a
    session routed to that profile (active agent) answer 502 problem+json ("the model failed") whose body names no
    provider internals (no endpoint, host, port, SDK exception); invoke-streaming ends with an error event of status
    502 naming none either (or answers the same problem before the stream starts)."""
    dead = port_factory()
    service, url = agent(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{dead}",
        AWS_ENDPOINT_URL_BEDROCK_RUNTIME=f"http://127.0.0.1:{dead}",
        AWS_MAX_ATTEMPTS="1",
    )
    leaks = ("127.0.0.1", str(dead), "botocore", "Endpoint", "Traceback", "bedrock-runtime")

    def assert_model_failure(r: httpx.Response) -> None:
        assert is_problem(r, 502), (r.status_code, r.headers.get("content-type"), r.text[:300])
        assert r.json()["status"] == 502
        assert not [leak for leak in leaks if leak in r.text], r.text

    with service:
        r = httpx.post(f"{url}/api/v1/agents", json={"name": "unreachable", "model_config": {"provider": "bedrock"}})
        assert r.status_code == 201, r.text
        broken = r.json()["agent_id"]
        assert_model_failure(httpx.post(f"{url}/api/v1/agents/{broken}/invoke", json={"prompt": "hi"}, timeout=120))
        with httpx.stream(
            "POST", f"{url}/api/v1/agents/{broken}/invoke-streaming", json={"prompt": "hi"}, timeout=120
        ) as r:
            if r.status_code != 200:  # refused before the stream started: a problem like invoke's
                r.read()
                assert_model_failure(r)
            else:
                lines = [line for line in r.iter_lines() if line.startswith("data:")]
                last = json.loads(lines[-1][5:])
                assert last["type"] == "error" and last["status"] == 502, last
                assert not [leak for leak in leaks if leak in "".join(lines)], lines
        sid = httpx.post(f"{url}/process", json={"prompt": "hello"}, timeout=60).json()["session_id"]
        r = httpx.put(f"{url}/api/v1/sessions/{sid}/active-agent", json={"agent_id": broken}, timeout=30)
        assert r.status_code == 200, r.text
        assert_model_failure(httpx.post(f"{url}/process", json={"prompt": "again", "session_id": sid}, timeout=120))


def test_device_id_on_invoke_is_no_oracle_and_keeps_continuity_per_profile(agent: Callable[..., Any]) -> None:
    """Another device's session reads as 404 on invoke, with the same problem as a session that does not exist (no
    profile named), whichever profile the caller asks for. A device alternating profiles P, P, Q, P continues its P
    conversation on the fourth turn (turn 3 of the first session) and gets a session of its own on Q."""
    service, url = agent()
    with service:
        p = httpx.post(f"{url}/api/v1/agents", json={"name": "profile-p"}).json()["agent_id"]
        q = httpx.post(f"{url}/api/v1/agents", json={"name": "profile-q"}).json()["agent_id"]

        def invoke(profile: str, device: str, prompt: str, session_id: str | None = None) -> httpx.Response:
            body = {"prompt": prompt} | ({"session_id": session_id} if session_id else {})
            return httpx.post(
                f"{url}/api/v1/agents/{profile}/invoke", json=body, headers={"X-Device-ID": device}, timeout=60
            )

        owner, stranger = str(uuid.uuid4()), str(uuid.uuid4())
        r = invoke(p, owner, "mine")
        assert r.status_code == 200, r.text
        sid = r.json()["session_id"]
        missing = invoke(p, stranger, "probe", f"r3-none-{uuid.uuid4().hex[:8]}")
        assert is_problem(missing, 404), missing.text
        for profile in (p, q):
            r = invoke(profile, stranger, "probe", sid)
            assert is_problem(r, 404), (profile, r.status_code, r.text)
            assert p not in r.text and "profile-p" not in r.text
            assert r.json()["title"] == missing.json()["title"]

        device = str(uuid.uuid4())
        first = invoke(p, device, "p one").json()
        second = invoke(p, device, "p two").json()
        third = invoke(q, device, "q one")
        assert third.status_code == 200, third.text
        fourth = invoke(p, device, "p three").json()
        assert second["session_id"] == first["session_id"] == fourth["session_id"]
        assert third.json()["session_id"] != first["session_id"] and third.json()["response"].startswith("turn 1;")
        assert fourth["response"].startswith("turn 3;"), fourth


@xfail(11, "with keys set, /docs, /redoc and /openapi.json answer without a key; /health reports its cache size")
def test_docs_need_the_key_and_health_reports_no_usage(agent: Callable[..., Any]) -> None:
    """With `AGENT_API_KEYS` set, `/docs`, `/redoc` and `/openapi.json` answer 401 without a valid key and 200 with one
    (a setting may open them; not tested here); `/health` stays open and reports no usage figures (no cache size, no
    counts)."""
    service, url = agent(AGENT_API_KEYS=KEYS)
    with service:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert httpx.get(f"{url}{path}").status_code == 401, path
            assert httpx.get(f"{url}{path}", headers=auth("not-a-key")).status_code == 401, path
            assert httpx.get(f"{url}{path}", headers=auth(ALICE)).status_code == 200, path
        r = httpx.get(f"{url}/health")
        assert r.status_code == 200
        figures = {k: v for k, v in r.json().items() if isinstance(v, int | float) and not isinstance(v, bool)}
        assert "cached_agents" not in r.json() and not figures, r.json()


def test_websocket_messages_sent_back_to_back_keep_history_alternating(agent: Callable[..., Any]) -> None:
    """Two `/ws` messages sent without waiting for the first reply are both answered (queued, or merged into one user
    message) and the stored history alternates user / assistant, so the next HTTP turn works on any provider."""
    service, url = agent()
    sid = f"r3-b2b-{uuid.uuid4().hex[:8]}"

    def both_answered() -> bool:
        messages = httpx.get(f"{url}/sessions/{sid}/history", timeout=30).json()["messages"]
        texts = " ".join(b.get("text", "") for m in messages if m["role"] == "user" for b in m["content"])
        return "first message" in texts and "second message" in texts and messages[-1]["role"] == "assistant"

    async def scenario() -> None:
        async with connect(f"ws://{url.removeprefix('http://')}/ws/{sid}") as ws:
            assert orjson.loads(await ws.recv())["type"] == "start"
            await ws.send(orjson.dumps({"type": "text", "text": "first message"}).decode())
            await ws.send(orjson.dumps({"type": "text", "text": "second message"}).decode())
            end = time.monotonic() + WAIT
            while True:
                event = await _ws_reply(ws)
                assert event["type"] == "done", event
                if await asyncio.to_thread(both_answered):
                    return
                assert time.monotonic() < end, "both messages not answered in time"

    with service:
        asyncio.run(scenario())
        history = roles(url, sid)
        assert history[0] == "user" and history[-1] == "assistant"
        assert all(a != b for a, b in itertools.pairwise(history)), history
        r = httpx.post(f"{url}/process", json={"prompt": "over http", "session_id": sid}, timeout=60)
        assert r.status_code == 200, r.text
        history = roles(url, sid)
        assert all(a != b for a, b in itertools.pairwise(history)), history


def test_websocket_caps_frames_and_refuses_nul_with_a_plain_422_event(agent: Callable[..., Any]) -> None:
    """A `/ws` frame over the agent's body limit (`AGENT_MAX_REQUEST_BYTES`, 1 MiB) is refused unparsed, as an HTTP body
    would be: the socket is closed with 1009 (message too big), or an error event with status 413 is sent and the
    socket closed. A text holding U+0000 gets a plain `{"type": "error", "status": 422}` event naming no internals,
    the socket stays open, the next message is answered, and only that one is stored."""
    service, url = agent()
    sid = f"r3-frame-{uuid.uuid4().hex[:8]}"
    ws_url = f"ws://{url.removeprefix('http://')}/ws/{sid}"

    async def oversized() -> tuple[int | None, list[dict[str, Any]]]:
        events: list[dict[str, Any]] = []
        async with connect(ws_url, max_size=None) as ws:
            assert orjson.loads(await ws.recv())["type"] == "start"
            await ws.send(orjson.dumps({"type": "text", "text": "x" * (2 * 1024 * 1024)}).decode())
            try:
                while True:
                    events.append(orjson.loads(await asyncio.wait_for(ws.recv(), WAIT)))
                    if events[-1].get("status") != 413:
                        return None, events  # the frame was read and parsed: no need to wait for a close
            except ConnectionClosed as e:
                return (e.rcvd.code if e.rcvd else None), events

    async def nul() -> tuple[dict[str, Any], dict[str, Any]]:
        async with connect(ws_url) as ws:
            assert orjson.loads(await ws.recv())["type"] == "start"
            await ws.send(orjson.dumps({"type": "text", "text": "a\u0000b"}).decode())
            refused = await _ws_reply(ws)
            await ws.send(orjson.dumps({"type": "text", "text": "fine"}).decode())
            return refused, await _ws_reply(ws)

    with service:
        code, events = asyncio.run(oversized())
        refused_413 = [e for e in events if e.get("type") == "error" and e.get("status") == 413]
        assert code == 1009 or (refused_413 and code is not None), (code, [str(e)[:200] for e in events])
        refused, answered = asyncio.run(nul())
        assert refused["type"] == "error" and refused["status"] == 422, refused
        detail = str(refused.get("detail", "")).lower()
        assert not [
            w for w in ("backend", "database", "postgres", "jsonb", "unicode", "sql", "/v1/", "http://") if w in detail
        ], detail
        assert answered["type"] == "done", answered
        assert user_texts(url, sid) == ["fine"]
