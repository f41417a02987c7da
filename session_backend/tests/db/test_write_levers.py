"""The write levers of performance round 2: the hot path answers every bad request exactly as the FastAPI routes do
(status, problem body, headers), and group commit gives each write of a group the outcome it gets alone, answers only
what is committed, and fails every waiting write with 503 when the group's connection dies."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import orjson
import pytest
from fastapi.testclient import TestClient

from session_backend.app import create_app
from session_backend.db import group_commit as store_module
from session_backend.db.errors import UNAVAILABLE_ERRORS, Conflict, LeaseNotHeld, NotFound, PreconditionFailed
from session_backend.db.group_commit import Writer, embed_content
from session_backend.db.migrations import apply_migrations
from session_backend.db.pool import create_pool
from session_backend.db.sessions import SessionStore
from session_backend.db.turns import TurnStore

pytestmark = pytest.mark.integration

KEY = "levers-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MESSAGE = {"role": "user", "content": [{"text": "hello"}]}


class Store(SessionStore, TurnStore):
    """Both stores the write path serves, on one writer (as the app builds them)."""


@pytest.fixture(scope="module")
def clients(make_settings: Any) -> Iterator[dict[str, TestClient]]:
    """The same database behind three apps: the FastAPI routes alone, the hot path alone, and the shipped defaults."""
    apps = {
        "routes": make_settings(api_key=KEY, max_body_bytes=64 * 1024, hot_path=False, group_commit=0),
        "hot": make_settings(api_key=KEY, max_body_bytes=64 * 1024, hot_path=True, group_commit=0),
        "defaults": make_settings(api_key=KEY, max_body_bytes=64 * 1024),
    }
    with (
        TestClient(create_app(apps["routes"]), headers=AUTH) as routes,
        TestClient(create_app(apps["hot"]), headers=AUTH) as hot,
        TestClient(create_app(apps["defaults"]), headers=AUTH) as defaults,
    ):
        yield {"routes": routes, "hot": hot, "defaults": defaults}


def _session(client: TestClient) -> str:
    sid = f"lv-{uuid.uuid4().hex[:12]}"
    assert client.post("/v1/sessions", json={"session_id": sid}).status_code == 201
    assert client.post(f"/v1/sessions/{sid}/agents", json={"agent_id": "a"}).status_code == 201
    return sid


def _message(message_id: int = 0, **extra: Any) -> dict[str, Any]:
    return {"message_id": message_id, "message": MESSAGE} | extra


def _post_message(body: Any, **kwargs: Any) -> Callable[[TestClient, str], Any]:
    def call(client: TestClient, sid: str) -> Any:
        return client.post(f"/v1/sessions/{sid}/agents/a/messages", json=body, **kwargs)

    return call


def _post_raw(path: str, content: bytes, content_type: str = "application/json", **headers: str) -> Any:
    def call(client: TestClient, sid: str) -> Any:
        return client.post(path.format(sid=sid), content=content, headers={"content-type": content_type, **headers})

    return call


def _batch(body: Any) -> Callable[[TestClient, str], Any]:
    def call(client: TestClient, sid: str) -> Any:
        return client.post(f"/v1/sessions/{sid}/batch", json=body)

    return call


def _twice(first: Callable[[TestClient, str], Any], second: Callable[[TestClient, str], Any]) -> Any:
    def call(client: TestClient, sid: str) -> Any:
        first(client, sid)
        return second(client, sid)

    return call


def _create(message_id: int = 0, message: Any = MESSAGE) -> dict[str, Any]:
    return {"op": "create_message", "agent_id": "a", "message": {"message_id": message_id, "message": message}}


MESSAGES = "/v1/sessions/{sid}/agents/a/messages"

CASES: dict[str, Callable[[TestClient, str], Any]] = {
    # authentication
    "no key": _post_raw(MESSAGES, b'{"message_id":0,"message":{}}', authorization=""),
    "wrong key": _post_raw(MESSAGES, b'{"message_id":0,"message":{}}', authorization="Bearer nope"),
    "basic scheme": _post_raw(MESSAGES, b'{"message_id":0,"message":{}}', authorization=f"Basic {KEY}"),
    "batch without key": _post_raw("/v1/sessions/{sid}/batch", b"{}", authorization=""),
    "bad JSON without key": _post_raw(MESSAGES, b"{", authorization=""),
    # JSON the strict parser refuses
    "not JSON": _post_raw(MESSAGES, b"{"),
    "NaN": _post_raw(MESSAGES, b'{"message_id":0,"message":{"x":NaN}}'),
    "Infinity": _post_raw(MESSAGES, b'{"message_id":0,"message":{"x":-Infinity}}'),
    "1e400": _post_raw(MESSAGES, b'{"message_id":0,"message":{"x":1e400}}'),
    "1e400 in a batch": _post_raw("/v1/sessions/{sid}/batch", b'{"operations":[{"x":1E+400}]}'),
    "integer beyond 64 bits": _post_raw(MESSAGES, b'{"message_id":0,"message":{"x":123456789012345678901234567890}}'),
    "lone surrogate": _post_raw(MESSAGES, b'{"message_id":0,"message":{"x":"\\ud800"}}'),
    "UTF-16 body": _post_raw(MESSAGES, '{"message_id":0,"message":{}}'.encode("utf-16")),
    "text/plain": _post_raw(MESSAGES, b'{"message_id":0,"message":{}}', content_type="text/plain"),
    "empty body": _post_raw(MESSAGES, b""),
    # values PostgreSQL refuses
    "NUL in a message": _post_message(_message(message={"text": "a\u0000b"})),
    "NUL in a batch": _batch({"operations": [_create(0, {"text": "\u0000"})]}),
    # ids
    "bad session id": lambda c, sid: c.post("/v1/sessions/bad!id/agents/a/messages", json=_message()),
    "bad agent id": lambda c, sid: c.post(f"/v1/sessions/{sid}/agents/a%20b/messages", json=_message()),
    "long agent id": lambda c, sid: c.post(f"/v1/sessions/{sid}/agents/{'a' * 257}/messages", json=_message()),
    "bad batch session id": lambda c, sid: c.post("/v1/sessions/bad!id/batch", json={"operations": [_create()]}),
    "bad agent id in a batch": _batch({"operations": [_create() | {"agent_id": ".."}]}),
    # shapes
    "not an object": _post_message([1, 2]),
    "no message": _post_message({"message_id": 0}),
    "message not an object": _post_message(_message(message="hi")),
    "negative message_id": _post_message(_message(-1)),
    "message_id beyond int4": _post_message(_message(2**31)),
    "message_id as text": _post_message(_message() | {"message_id": "3"}),
    "message_id as float": _post_message(_message() | {"message_id": 3.0}),
    "message_id true": _post_message(_message() | {"message_id": True}),
    "redact_message a list": _post_message(_message(redact_message=[])),
    "extra fields": _post_message(_message(extra="ignored")),
    # timestamps
    "timestamp not a date": _post_message(_message(created_at="yesterday")),
    "datetime.min": _post_message(_message(created_at="0001-01-01T00:00:00")),
    "datetime.max": _post_message(_message(updated_at="9999-12-31T23:59:59.999999")),
    "year 1 with an offset": _post_message(_message(created_at="0001-01-01T00:30:00+01:00")),
    "unix time": _post_message(_message(created_at=1700000000)),
    "leap second": _post_message(_message(created_at="2026-06-30T23:59:60+00:00")),
    "offset and Z": _post_message(_message(created_at="2026-01-01T10:00:00+05:30", updated_at="2026-01-01T00:00Z")),
    "date only": _post_message(_message(created_at="2026-01-01")),
    "batch timestamp": _batch({"operations": [_create() | {"message": _message(updated_at="0001-01-01T00:00:00")}]}),
    # the store's answers
    "unknown session": lambda c, sid: c.post("/v1/sessions/nope-nope/agents/a/messages", json=_message()),
    "unknown agent": lambda c, sid: c.post(f"/v1/sessions/{sid}/agents/zz/messages", json=_message()),
    "retry": _twice(_post_message(_message(1)), _post_message(_message(1, created_at="2026-01-01T00:00:00"))),
    "conflict": _twice(_post_message(_message(1)), _post_message(_message(1, message={"role": "x"}))),
    # batches
    "batch ok": _batch({"operations": [_create(0), _create(1), {"op": "update_agent", "agent": {"agent_id": "a"}}]}),
    "empty batch": _batch({"operations": []}),
    "1001 operations": _batch({"operations": [_create(i) for i in range(1001)]}),
    "unknown operation": _batch({"operations": [{"op": "delete_message", "agent_id": "a"}]}),
    "stale if_version": _batch({"operations": [{"op": "update_agent", "agent": {"agent_id": "a"}, "if_version": 9}]}),
    "if_version 0": _batch({"operations": [{"op": "update_agent", "agent": {"agent_id": "a"}, "if_version": 0}]}),
    "agent state a list": _batch({"operations": [{"op": "update_agent", "agent": {"agent_id": "a", "state": []}}]}),
    "internal_state by name": _batch(
        {"operations": [{"op": "update_agent", "agent": {"agent_id": "a", "internal_state": {"k": 1}}}]}
    ),
    "lease not held": _batch({"operations": [_create()], "lease_owner": "someone"}),
    "bad lease owner": _batch({"operations": [_create()], "lease_owner": "has space"}),
    "wrong incarnation": _batch({"operations": [_create()], "incarnation": 999}),
    "incarnation as text": _batch({"operations": [_create()], "incarnation": "1"}),
    "turn recorded twice": _twice(
        _batch({"operations": [_create(0)], "turn": {"turn_id": "t1"}}),
        _batch({"operations": [_create(1)], "turn": {"turn_id": "t1"}}),
    ),
    "bad turn id": _batch({"operations": [_create()], "turn": {"turn_id": ""}}),
    "batch conflict leaves nothing": _twice(
        _batch({"operations": [_create(0)]}), _batch({"operations": [_create(1), _create(0, {"role": "other"})]})
    ),
}


def _without_clock(value: Any, sid: str) -> Any:
    # Ids and the server's clock differ between two runs of a case; everything else must not.
    if isinstance(value, dict):
        return {k: _without_clock(v, sid) for k, v in value.items() if k not in ("created_at", "updated_at")}
    if isinstance(value, list):
        return [_without_clock(v, sid) for v in value]
    return value.replace(sid, "SID") if isinstance(value, str) else value


def _answer(client: TestClient, case: str) -> tuple[Any, ...]:
    sid = _session(client)
    r = CASES[case](client, sid)
    stored = client.get(f"/v1/sessions/{sid}/agents/a/messages").json()
    agent = client.get(f"/v1/sessions/{sid}/agents/a").json()
    body = r.json() if r.content else None
    return (
        r.status_code,
        r.headers.get("content-type"),
        r.headers.get("www-authenticate"),
        _without_clock(body, sid),
        _without_clock(stored, sid),
        agent["version"],
    )


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("lane", ["hot", "defaults"])
def test_hot_path_answers_as_the_routes_do(clients: dict[str, TestClient], case: str, lane: str) -> None:
    expected = _answer(clients["routes"], case)
    assert _answer(clients[lane], case) == expected


def test_body_over_the_limit_is_413_either_way(clients: dict[str, TestClient]) -> None:
    for client in clients.values():
        sid = _session(client)
        r = client.post(f"/v1/sessions/{sid}/agents/a/messages", json=_message(message={"t": "x" * 70_000}))
        assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["title"] == "Content Too Large"


def test_hot_path_stores_what_the_routes_store(clients: dict[str, TestClient]) -> None:
    stored = []
    for client in clients.values():
        sid = _session(client)
        body = _message(0, created_at="2026-01-01T10:00:00.5+05:30", updated_at="2026-01-01T00:00:00Z")
        r = client.post(f"/v1/sessions/{sid}/agents/a/messages", json=body | {"redact_message": {"r": 1}})
        assert r.status_code == 201
        batch = {"operations": [_create(1), {"op": "update_agent", "agent": {"agent_id": "a", "state": {"s": 1}}}]}
        assert client.post(f"/v1/sessions/{sid}/batch", json=batch).json()["agent_versions"] == {"a": 2}
        agent = client.get(f"/v1/sessions/{sid}/agents/a").json()
        listed = client.get(f"/v1/sessions/{sid}/agents/a/messages").json()
        stored.append((r.json(), listed[0], _without_clock(listed[1:], sid), agent["state"]))
    assert stored[0] == stored[1] == stored[2]
    assert stored[0][0]["created_at"] == "2026-01-01T04:30:00.500000+00:00"


def test_openapi_still_documents_the_write_routes(clients: dict[str, TestClient]) -> None:
    paths = clients["defaults"].get("/openapi.json").json()["paths"]
    assert "post" in paths["/v1/sessions/{session_id}/agents/{agent_id}/messages"]
    assert "post" in paths["/v1/sessions/{session_id}/batch"]


# group commit, against the store


@pytest.fixture()
async def grouped(database_url: str) -> Any:
    """A store with group commit on, its session `g` (agent `a`), and an admin connection."""
    pool = await create_pool(database_url, min_size=1, max_size=4)
    admin = await asyncpg.connect(database_url)
    await apply_migrations(admin)
    sid = f"g-{uuid.uuid4().hex[:10]}"
    await admin.execute("INSERT INTO sessions (session_id) VALUES ($1)", sid)
    await admin.execute("INSERT INTO agents (session_id, agent_id) VALUES ($1, 'a'), ($1, 'b')", sid)
    try:
        yield Store(Writer(pool, 64)), Store(Writer(pool)), sid, admin
    finally:
        await admin.close()
        await pool.close()


def _msg(message_id: int, text: str = "hi") -> dict[str, Any]:
    return {"message_id": message_id, "message": {"role": "user", "content": [{"text": text}]}}


async def _outcome(store: Store, sid: str, agent: str, message: dict[str, Any]) -> Any:
    try:
        return await store.create_message(sid, agent, message)
    except Exception as e:
        return type(e), str(e)


async def test_one_bad_write_in_a_group_fails_alone_with_its_own_error(grouped: Any) -> None:
    store, single, sid, admin = grouped
    await single.create_message(sid, "a", _msg(0, "first"))
    bad = {
        10: (sid, "a", _msg(0, "different")),  # 409
        20: (sid, "zz", _msg(1)),  # 404 agent
        30: ("no-such-session", "a", _msg(1)),  # 404 session
        40: (sid, "b", _msg(1) | {"created_at": "not a time"}),  # DataError
        45: (sid, "a", _msg(0, "first")),  # an identical retry: 200
    }
    writes = [bad.get(i, (sid, "b" if i % 2 else "a", _msg(100 + i))) for i in range(60)]
    outcomes = await asyncio.gather(*(_outcome(store, *w) for w in writes))
    for i, outcome in enumerate(outcomes):
        if i in bad:
            continue
        assert outcome[0] is True, (i, outcome)
    assert outcomes[10][0] is Conflict and outcomes[20][0] is NotFound and outcomes[30][0] is NotFound
    assert outcomes[40][0] is asyncpg.InvalidDatetimeFormatError
    assert outcomes[45][0] is False
    # the same writes one at a time, without group commit: the same outcomes, messages included
    await admin.execute("DELETE FROM messages WHERE session_id = $1 AND message_id > 0", sid)
    alone = [await _outcome(single, *w) for w in writes]
    assert [o if i in bad else o[0] for i, o in enumerate(outcomes)] == [
        o if i in bad else o[0] for i, o in enumerate(alone)
    ]


async def test_writes_share_groups_and_acknowledged_writes_are_visible(grouped: Any, database_url: str) -> None:
    store, _, sid, _ = grouped
    sizes: list[int] = []
    apply = store.writer.group_commit._apply

    async def counting(conn: Any, group: list[Any]) -> bool:
        sizes.append(len(group))
        return bool(await apply(conn, group))

    store.writer.group_commit._apply = counting
    await asyncio.gather(*(store.create_message(sid, "a", _msg(i)) for i in range(40)))
    assert sum(sizes) == 40 and len(sizes) <= 3, sizes  # a statement (and a commit) per group, not per write
    other = await asyncpg.connect(database_url)  # acknowledged: committed, so visible to anyone
    try:
        assert await other.fetchval("SELECT count(*) FROM messages WHERE session_id = $1", sid) == 40
    finally:
        await other.close()


async def test_fences_and_versions_behave_as_alone_inside_a_group(grouped: Any) -> None:
    store, _, sid, admin = grouped
    update = {
        "op": "update_agent",
        "agent": {"agent_id": "a", "state": {}, "conversation_manager_state": {}, "internal_state": {}},
    }
    results = await asyncio.gather(
        store.apply_batch(sid, [update | {"if_version": 1}]),
        store.apply_batch(sid, [update | {"if_version": 1}]),
        store.apply_batch(sid, [_create(5)], lease_owner="nobody"),
        store.apply_batch(sid, [_create(6)], incarnation=12345),
        store.apply_batch(sid, [_create(7)], turn={"turn_id": "t", "idempotency_key": None, "result": {}}),
        store.apply_batch(sid, [_create(8)], turn={"turn_id": "t", "idempotency_key": None, "result": {}}),
        return_exceptions=True,
    )
    assert results[0] == {
        "created_messages": 0,
        "existing_messages": 0,
        "agent_versions": {"a": 2},
        "lease_ended": False,
    }
    assert isinstance(results[1], PreconditionFailed)
    assert isinstance(results[2], LeaseNotHeld)
    assert isinstance(results[3], PreconditionFailed)
    assert results[4]["created_messages"] == 1  # type: ignore[index]
    assert isinstance(results[5], Conflict)
    ids = [r[0] for r in await admin.fetch("SELECT message_id FROM messages WHERE session_id = $1", sid)]
    assert ids == [7]


async def test_a_connection_killed_mid_group_fails_every_write_of_it_and_commits_none(
    grouped: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _, sid, admin = grouped
    monkeypatch.setattr(store_module, "GROUP_COMMIT_CONCURRENCY", 1)
    update = {
        "op": "update_agent",
        "agent": {"agent_id": "a", "state": {}, "conversation_manager_state": {}, "internal_state": {}},
    }
    async with admin.transaction():
        await admin.execute("SELECT 1 FROM agents WHERE session_id = $1 AND agent_id = 'a' FOR UPDATE", sid)
        # One group: the update first (it waits for the lock held here), then ten appends.
        writes = [asyncio.create_task(store.apply_batch(sid, [update]))]
        writes += [asyncio.create_task(store.create_message(sid, "b", _msg(i))) for i in range(10)]
        pid = None
        for _ in range(100):
            pid = await admin.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'session-backend' "
                "AND wait_event_type = 'Lock' AND datname = current_database()"
            )
            if pid:
                break
            await asyncio.sleep(0.05)
        assert pid
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert all(isinstance(o, UNAVAILABLE_ERRORS) for o in outcomes), outcomes
    assert await admin.fetchval("SELECT count(*) FROM messages WHERE session_id = $1", sid) == 0
    assert await admin.fetchval("SELECT version FROM agents WHERE session_id = $1 AND agent_id = 'a'", sid) == 1
    # the next group takes a new connection
    assert (await store.create_message(sid, "b", _msg(0)))[0] is True


def test_metrics_name_hot_path_requests_by_their_route(clients: dict[str, TestClient]) -> None:
    client = clients["defaults"]
    sid = _session(client)
    for i in range(3):
        assert client.post(f"/v1/sessions/{sid}/agents/a/messages", json=_message(i)).status_code == 201
    assert client.post(f"/v1/sessions/{sid}/batch", json={"operations": [_create(9)]}).status_code == 200
    text = client.get("/metrics").text
    route = 'handler="/v1/sessions/{session_id}/agents/{agent_id}/messages",method="POST",status="2xx"'
    assert any(line.startswith("http_requests_total{") and route in line for line in text.splitlines())
    assert 'handler="/v1/sessions/{session_id}/batch"' in text
    assert f"/v1/sessions/{sid}" not in text


def _assert_problem(r: Any, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def _requests_counted(client: TestClient, route: str) -> float:
    prefix = f'http_requests_total{{handler="{route}",method="POST",status='
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in client.get("/metrics").text.splitlines() if line.startswith(prefix)
    )


def test_the_hot_path_wraps_the_whole_stack_yet_keeps_its_limits(clients: dict[str, TestClient]) -> None:
    """The fast lane sits outside FastAPI's middleware: the body limit, unframed bodies, a wrong key and the request
    count must still come out as from the routes (each request counted once)."""
    client = clients["hot"]
    sid = _session(client)
    route = "/v1/sessions/{session_id}/agents/{agent_id}/messages"
    before = _requests_counted(client, route)
    big = _message(0, message={"role": "user", "content": [{"text": "x" * (65 * 1024)}]})
    _assert_problem(client.post(f"/v1/sessions/{sid}/agents/a/messages", json=big), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield orjson.dumps(_message(1))

    r = client.post(
        f"/v1/sessions/{sid}/agents/a/messages", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 201, r.text
    r = client.post(f"/v1/sessions/{sid}/agents/a/messages", json=_message(2), headers={"Authorization": "Bearer no"})
    _assert_problem(r, 401)
    assert client.post(f"/v1/sessions/{sid}/agents/a/messages", json=_message(3)).status_code == 201
    assert [m["message_id"] for m in client.get(f"/v1/sessions/{sid}/agents/a/messages").json()] == [1, 3]
    assert _requests_counted(client, route) - before == 4


async def test_a_write_deadlocked_between_two_groups_is_written_again_alone(
    grouped: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _, sid, admin = grouped
    monkeypatch.setattr(store_module, "GROUP_COMMIT_CONCURRENCY", 1)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    second = Store(Writer(pool, 64))

    def update(agent_id: str) -> list[dict[str, Any]]:
        empty: dict[str, Any] = {"state": {}, "conversation_manager_state": {}, "internal_state": {}}
        return [{"op": "update_agent", "agent": {"agent_id": agent_id, **empty}}]

    sizes: list[int] = []
    for store in (first, second):
        committer: Any = store.writer.group_commit
        apply = committer._apply

        async def counting(conn: Any, group: list[Any], apply: Any = apply) -> bool:
            sizes.append(len(group))
            return bool(await apply(conn, group))

        monkeypatch.setattr(committer, "_apply", counting)
    # The first group (a, b) waits for row a and the second (b, a) for row b, each held by a transaction here. Row
    # a is let go first: the first group takes it and queues for b behind the second; then b: the second group
    # takes it and wants a, held by the first group, which waits for b: a deadlock, every time.
    holder = await asyncpg.connect(database_url)
    try:
        sizes.clear()
        before = dict(await admin.fetch("SELECT agent_id, version FROM agents WHERE session_id = $1", sid))
        lock_a, lock_b = admin.transaction(), holder.transaction()
        await lock_a.start()
        await lock_b.start()
        await admin.execute("SELECT 1 FROM agents WHERE session_id = $1 AND agent_id = 'a' FOR UPDATE", sid)
        await holder.execute("SELECT 1 FROM agents WHERE session_id = $1 AND agent_id = 'b' FOR UPDATE", sid)
        writes = [asyncio.create_task(first.apply_batch(sid, update(a))) for a in ("a", "b")]
        for _ in range(100):  # the first group waits for a
            if await _lock_waiters(holder) == 1:
                break
            await asyncio.sleep(0.02)
        writes += [asyncio.create_task(second.apply_batch(sid, update(a))) for a in ("b", "a")]
        for _ in range(100):  # and the second for b
            if await _lock_waiters(holder) == 2:
                break
            await asyncio.sleep(0.02)
        assert await _lock_waiters(holder) == 2
        await lock_a.commit()
        await asyncio.sleep(0.3)  # the first group takes a and queues for b
        await lock_b.commit()
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        assert all(isinstance(o, dict) for o in outcomes), outcomes
        versions = dict(await admin.fetch("SELECT agent_id, version FROM agents WHERE session_id = $1", sid))
        assert versions == {agent: version + 2 for agent, version in before.items()}
        # two groups of two, and, after the deadlock, its victim once more alone
        assert sorted(sizes) == [1, 2, 2], sizes
    finally:
        await holder.close()
        await pool.close()


async def _lock_waiters(conn: Any) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'session-backend' "
        "AND wait_event_type = 'Lock' AND datname = current_database()"
    )
    return count


async def test_a_write_moves_the_session_row_once_and_never_queues_on_it(grouped: Any) -> None:
    """Write function version 6: a group of writes to one session moves `updated_at` in one row version, and a write
    finding the session row held by another transaction in flight commits without waiting for it."""
    _, single, sid, admin = grouped
    async with admin.transaction():  # five writes in one transaction, as a group commit makes them
        for i in range(1, 6):
            write = embed_content([{"op": "create_message", "agent_id": "a", "message": _msg(i)}])
            await admin.fetch(
                "SELECT * FROM session_backend_write($1, $2::text::json, NULL)", sid, orjson.dumps(write).decode()
            )
        updates = await admin.fetchval(
            "SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relid = 'sessions'::regclass"
        )
    assert updates == 1
    moved = await admin.fetchval("SELECT updated_at FROM sessions WHERE session_id = $1", sid)
    holder = admin.transaction()
    await holder.start()
    try:
        await admin.execute("SELECT 1 FROM sessions WHERE session_id = $1 FOR NO KEY UPDATE", sid)
        # Before version 6 this write waited for `holder` (the hang guard is generous: no timing is asserted).
        assert await asyncio.wait_for(single.create_message(sid, "a", _msg(10)), timeout=60)
    finally:
        await holder.rollback()
    assert await admin.fetchval("SELECT count(*) FROM messages WHERE session_id = $1 AND message_id = 10", sid) == 1
    assert await admin.fetchval("SELECT updated_at FROM sessions WHERE session_id = $1", sid) == moved
