"""Access-control matrix of the agent service (AGENT_API_KEYS set): every route of the app by every kind of caller,
ids that try traversal or encoding tricks, and proof that a refused request changed nothing in PostgreSQL.

Routes come from `app.routes`, so a route added later is in the matrix without editing this file; one reachable
without a key fails `test_every_route_refuses_a_caller_without_a_valid_key`.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from test_session_agent.api.app import create_app
from test_session_agent.models.scripted import ScriptedModel
from test_session_agent.settings import AgentSettings

pytestmark = pytest.mark.integration

ALICE, BOB, CAROL = "alice-key-0123456789", "bob-key-9876543210", "carol-key-1357924680"
KEYS = f"{ALICE}:alice,{BOB}:bob,{CAROL}:carol"
# Erasing an actor with its own key would erase Alice's session the later tests use: Carol erases herself instead.
ERASE_ACTOR = "/api/v1/actors/{actor_id}"

# Reachable without a key on purpose: liveness, the page (it asks for the key) and the API docs.
PUBLIC_PATHS = {"/health", "/", "/static", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}

# What a caller without a valid key sends.
REFUSED_CALLERS: dict[str, dict[str, str]] = {
    "no key": {},
    "wrong key": {"Authorization": "Bearer not-a-key"},
    "empty bearer": {"Authorization": "Bearer "},
    "key without scheme": {"Authorization": ALICE},
    "basic scheme": {"Authorization": f"Basic {ALICE}"},
    "key prefix": {"Authorization": f"Bearer {ALICE[:-1]}"},
    "key + suffix": {"Authorization": f"Bearer {ALICE}x"},
}

TRAVERSAL_IDS = [
    "..",
    ".",
    "%2e%2e",
    "%2E%2E%2F%2E%2E",
    "..%2f..%2fhealth",
    "a/b",
    "a%2Fb",
    "a%252Fb",
    "a%5cb",
    "a\\b",
    "%00",
    "a%00b",
    "%C0%AE%C0%AE",
    "\u2024\u2024",  # one-dot leaders
    "\uff53\uff45\uff53\uff53",  # fullwidth letters
    "caf\u00e9",
    "a\u2215b",  # division slash
    "x" * 300,
    "%20",
    "a%0d%0aSet-Cookie:%20x=1",
]


# Request bodies of routes that are not turns (a turn's body is the default).
BODIES: dict[str, dict[str, Any]] = {
    "/sessions/{session_id}/fork": {},
    "/api/v1/agents": {"name": "matrix"},
    "/api/v1/agents/{agent_id}": {"name": "matrix"},
    "/api/v1/actors/{actor_id}/memories": {"content": "matrix memory"},
}
# Query parameters a route requires.
QUERIES: dict[str, dict[str, str]] = {"/api/v1/sessions": {"agent_id": "default"}}


@dataclass(frozen=True)
class Endpoint:
    """One method of one route, as the matrix calls it."""

    method: str
    path: str
    websocket: bool = False

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)(?::\w+)?}", self.path)

    def url(self, **values: str) -> str:
        return re.sub(r"{(\w+)(?::\w+)?}", lambda m: values.get(m.group(1), "x"), self.path)

    def __str__(self) -> str:
        return f"{'WS' if self.websocket else self.method} {self.path}"


def protected_endpoints(app: FastAPI) -> list[Endpoint]:
    """Every method of every route (included routers flattened) except the public ones; an unknown kind fails."""
    out: list[Endpoint] = []
    for context in iter_route_contexts(app.routes):
        route, path = context.original_route, context.path or ""
        if path in PUBLIC_PATHS:
            continue
        if isinstance(route, APIWebSocketRoute):
            out.append(Endpoint("GET", path, websocket=True))
        elif isinstance(route, APIRoute | Route):
            out += [Endpoint(m, path) for m in sorted(context.methods or ()) if m != "HEAD"]
        elif isinstance(route, Mount):
            out.append(Endpoint("GET", path + "/x"))
        else:
            pytest.fail(f"route {type(route).__name__} {path}: a kind the access-control matrix does not know")
    return out


def _table_fingerprints(database_url: str) -> dict[str, tuple[int, str]]:
    """Row count and an md5 of every row of every table: equal fingerprints, nothing changed."""

    async def read() -> dict[str, tuple[int, str]]:
        conn = await asyncpg.connect(database_url)
        try:
            tables = await conn.fetch(
                "SELECT quote_ident(table_name) AS t FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
            out = {}
            for row in tables:
                # table names come from the catalog, quoted by PostgreSQL itself
                r = await conn.fetchrow(
                    f"SELECT count(*) AS n, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h "
                    f"FROM {row['t']} x"
                )
                assert r is not None
                out[row["t"]] = (int(r["n"]), str(r["h"]))
            return out
        finally:
            await conn.close()

    return asyncio.run(read())


@pytest.fixture(scope="module")
def client(backend_url: str) -> Iterator[TestClient]:
    settings = AgentSettings.model_validate(
        {"backend_url": backend_url, "model_provider": "scripted", "backend_api_key": None, "api_keys": KEYS}
    )
    with TestClient(create_app(settings, model=ScriptedModel())) as c:
        yield c


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def call(client: TestClient, endpoint: Endpoint, headers: dict[str, str], **ids: str) -> Any:
    """Send the endpoint's request (a turn's body naming `session_id`): its response, None for a refused WebSocket."""
    url = endpoint.url(**ids)
    if endpoint.websocket:
        try:
            with client.websocket_connect(url, headers=headers):
                pass
        except Exception:  # refused: closed before accept or denied with an HTTP response
            return None
        pytest.fail(f"{endpoint}: WebSocket accepted")
    body = None
    if endpoint.method in ("POST", "PUT", "PATCH"):
        body = BODIES.get(endpoint.path, {"prompt": "matrix turn", "session_id": ids.get("session_id", "x")})
    return client.request(endpoint.method, url, headers=headers, json=body, params=QUERIES.get(endpoint.path))


@pytest.fixture(scope="module")
def alice_session(client: TestClient) -> str:
    r = client.post("/process", json={"prompt": "alice's secret"}, headers=auth(ALICE))
    assert r.status_code == 200, r.text
    return str(r.json()["session_id"])


def ids_for(session_id: str) -> dict[str, str]:
    return {"session_id": session_id, "actor_id": "alice", "agent_id": "default"}


MATRIX: dict[str, int] = {}


def test_every_route_refuses_a_caller_without_a_valid_key(
    client: TestClient, alice_session: str, database_url: str
) -> None:
    endpoints = protected_endpoints(client.app)  # type: ignore[arg-type]
    assert {str(e) for e in endpoints} >= {
        "POST /process",
        "POST /process-streaming",
        "GET /sessions",
        "GET /sessions/{session_id}/history",
        "DELETE /sessions/{session_id}",
    }
    before = _table_fingerprints(database_url)
    failures = []
    for endpoint in endpoints:
        for case, headers in REFUSED_CALLERS.items():
            r = call(client, endpoint, headers, **ids_for(alice_session))
            if r is None:
                continue
            ok = (
                r.status_code == 401
                and r.headers.get("www-authenticate") == "Bearer"
                and r.headers.get("content-type") == "application/problem+json"
                and alice_session not in r.text
            )
            if not ok:
                failures.append(f"{endpoint} [{case}] -> {r.status_code} {r.text[:120]}")
    MATRIX["refused callers"] = len(endpoints) * len(REFUSED_CALLERS)
    assert not failures, "\n".join(failures)
    assert _table_fingerprints(database_url) == before


def test_public_routes_answer_without_a_key(client: TestClient) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/static/app.js").status_code == 200


def test_another_actors_session_is_absent_on_every_route(
    client: TestClient, alice_session: str, database_url: str
) -> None:
    """Bob names Alice's session (path or body) on every route: answered as for a session that does not exist."""
    endpoints = [e for e in protected_endpoints(client.app) if not e.websocket]  # type: ignore[arg-type]
    absent = f"absent-{uuid.uuid4().hex[:8]}"
    alice_rows = _alice_rows(database_url, alice_session)
    failures = []
    for endpoint in endpoints:
        before = _table_fingerprints(database_url)
        r = call(client, endpoint, auth(BOB), **ids_for(alice_session))
        assert r is not None
        after = _table_fingerprints(database_url)
        leaked = alice_session in r.text or "alice's secret" in r.text
        if 200 <= r.status_code < 300:
            # Allowed only for what acts on Bob's own data (a turn in a new session of his, his own list):
            # then nothing of Alice's may show, and her rows must be untouched.
            if leaked or _alice_rows(database_url, alice_session) != alice_rows:
                failures.append(f"{endpoint} -> {r.status_code}: reached Alice's session")
            continue
        if after != before:
            failures.append(f"{endpoint} -> {r.status_code} but PostgreSQL changed")
        if leaked:
            failures.append(f"{endpoint} -> {r.status_code} leaks Alice's session: {r.text[:120]}")
        if r.status_code != 404:
            failures.append(f"{endpoint} -> {r.status_code}, not 404: {r.text[:120]}")
        if "session_id" in endpoint.params:
            # exactly as if absent: same status and body as for an id nobody has (a turn would create that one)
            r_absent = call(client, endpoint, auth(BOB), **ids_for(absent))
            assert r_absent is not None
            if (r.status_code, r.text.replace(alice_session, "ID")) != (
                r_absent.status_code,
                r_absent.text.replace(absent, "ID"),
            ):
                failures.append(f"{endpoint}: {r.status_code} {r.text[:80]} != absent {r_absent.text[:80]}")
    MATRIX["other actor"] = len(endpoints)
    assert not failures, "\n".join(failures)
    # and the list shows Bob only his own sessions
    page = client.get("/sessions", headers=auth(BOB)).json()
    assert all(s["actor_id"] == "bob" for s in page["items"])
    assert alice_session not in {s["session_id"] for s in page["items"]}


def _alice_rows(database_url: str, session_id: str) -> Any:
    async def read() -> Any:
        conn = await asyncpg.connect(database_url)
        try:
            return [
                tuple(r)
                for r in await conn.fetch(
                    "SELECT s.updated_at, count(m.*) FROM sessions s LEFT JOIN messages m USING (session_id) "
                    "WHERE s.session_id = $1 GROUP BY s.updated_at",
                    session_id,
                )
            ]
        finally:
            await conn.close()

    return asyncio.run(read())


def test_the_key_decides_the_actor(client: TestClient, alice_session: str, database_url: str) -> None:
    before = _table_fingerprints(database_url)
    for body in ({"prompt": "hi", "actor_id": "alice"}, {"prompt": "hi", "actor_id": "alice", "session_id": "b-1"}):
        r = client.post("/process", json=body, headers=auth(BOB))
        assert r.status_code == 403, r.text
    assert client.get("/sessions?actor_id=alice", headers=auth(BOB)).status_code == 403
    assert _table_fingerprints(database_url) == before
    # Bob's own session, his actor_id named or not
    sid = f"bob-{uuid.uuid4().hex[:8]}"
    r = client.post("/process", json={"prompt": "bob here", "session_id": sid, "actor_id": "bob"}, headers=auth(BOB))
    assert r.status_code == 200
    r = client.post("/process", json={"prompt": "again", "session_id": sid}, headers=auth(BOB))
    assert r.status_code == 200
    assert [s["session_id"] for s in client.get("/sessions", headers=auth(BOB)).json()["items"]] == [sid]
    assert client.get(f"/sessions/{sid}/history", headers=auth(ALICE)).status_code == 404
    own = [s["session_id"] for s in client.get("/sessions", headers=auth(ALICE)).json()["items"]]
    assert alice_session in own and sid not in own


def test_own_key_reaches_every_route(client: TestClient, database_url: str) -> None:
    """With her own key Alice is refused by no route (guards against a check that refuses everyone)."""
    endpoints = [e for e in protected_endpoints(client.app) if not e.websocket]  # type: ignore[arg-type]
    failures = []
    for endpoint in sorted(endpoints, key=lambda e: e.method == "DELETE"):
        sid = client.post("/process", json={"prompt": "own"}, headers=auth(ALICE)).json()["session_id"]
        if endpoint.path == ERASE_ACTOR:
            r = call(client, endpoint, auth(CAROL), **(ids_for(sid) | {"actor_id": "carol"}))
        else:
            r = call(client, endpoint, auth(ALICE), **ids_for(sid))
        assert r is not None
        if r.status_code in (401, 403) or r.status_code >= 500:
            failures.append(f"{endpoint} -> {r.status_code} {r.text[:120]}")
        if endpoint.path.startswith(("/sessions", "/process")) and not 200 <= r.status_code < 300:
            failures.append(f"{endpoint} -> {r.status_code} {r.text[:120]}")
    MATRIX["own key"] = len(endpoints)
    assert not failures, "\n".join(failures)


def test_traversal_and_encoding_tricks_in_ids(client: TestClient, alice_session: str, database_url: str) -> None:
    """Odd ids in paths and bodies, with Alice's and Bob's keys: 404/405/422, never a success or a 5xx."""
    endpoints = [e for e in protected_endpoints(client.app) if not e.websocket]  # type: ignore[arg-type]
    # a route's own id in the path, or a turn's body naming the session (other bodies name none: see BODIES)
    with_ids = [
        e
        for e in endpoints
        if "session_id" in e.params or (e.method in ("POST", "PUT", "PATCH") and e.path not in BODIES)
    ]
    before = _table_fingerprints(database_url)
    failures = []
    for endpoint in with_ids:
        for odd in TRAVERSAL_IDS:
            for key in (ALICE, BOB):
                r = call(client, endpoint, auth(key), **ids_for(odd))
                assert r is not None
                if r.status_code not in (404, 405, 422) or alice_session in r.text:
                    failures.append(f"{endpoint} id={odd[:40]!r} -> {r.status_code} {r.text[:100]}")
    # Alice's own id, re-encoded: still only hers
    for variant in (alice_session.upper(), f"{alice_session}%00", f"{alice_session}/", f"./{alice_session}"):
        status = client.get(f"/sessions/{variant}/history", headers=auth(BOB)).status_code
        if status not in (404, 422):
            failures.append(f"history of {variant!r} for Bob -> {status}")
    MATRIX["odd ids"] = len(with_ids) * len(TRAVERSAL_IDS) * 2
    assert not failures, "\n".join(failures)
    assert _table_fingerprints(database_url) == before


def test_an_idempotency_key_replays_only_to_the_sessions_owner(client: TestClient, database_url: str) -> None:
    """A stored turn's answer is replayed for its Idempotency-Key; never to another actor who names the same key."""
    headers = auth(ALICE) | {"Idempotency-Key": "turn-1"}
    first = client.post("/process", json={"prompt": "alice's private turn"}, headers=headers)
    assert first.status_code == 200
    sid = first.json()["session_id"]
    before = _table_fingerprints(database_url)
    for path in ("/process", "/process-streaming"):
        r = client.post(path, json={"prompt": "alice's private turn", "session_id": sid}, headers=headers | auth(BOB))
        assert r.status_code == 404 and first.json()["response"] not in r.text
    assert _table_fingerprints(database_url) == before
    again = client.post("/process", json={"prompt": "alice's private turn", "session_id": sid}, headers=headers)
    assert again.status_code == 200 and again.json()["response"] == first.json()["response"]


def test_another_actors_session_over_websocket(client: TestClient, alice_session: str, database_url: str) -> None:
    """WebSocket routes: Bob's key on Alice's session ends with a 404 error before anything is restored or stored."""
    sockets = [e for e in protected_endpoints(client.app) if e.websocket]  # type: ignore[arg-type]
    before = _table_fingerprints(database_url)
    for endpoint in sockets:
        for url in (endpoint.url(**ids_for(alice_session)), endpoint.url(**ids_for(f"bob-{uuid.uuid4().hex[:6]}"))):
            with client.websocket_connect(f"{url}?actor_id=alice", headers=auth(BOB)) as ws:
                message = ws.receive_json()
            assert message["type"] == "error" and message["status"] in (403, 404), (endpoint, message)
        with client.websocket_connect(endpoint.url(**ids_for(alice_session)), headers=auth(BOB)) as ws:
            message = ws.receive_json()
        assert message["type"] == "error" and message["status"] == 404, (endpoint, message)
        assert alice_session in message["session_id"]
    assert _table_fingerprints(database_url) == before
    MATRIX["other actor (WebSocket)"] = 3 * len(sockets)


def test_zz_matrix_size(client: TestClient) -> None:
    endpoints = protected_endpoints(client.app)  # type: ignore[arg-type]
    print(
        f"\naccess-control matrix: {len(endpoints)} protected endpoints; cases: {MATRIX}; total {sum(MATRIX.values())}"
    )
