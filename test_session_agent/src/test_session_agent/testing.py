"""An in-memory session backend for unit tests of code using the PostgreSQL clients, without a server.

Plug it into an `httpx.MockTransport` (as Strands tests its S3 session manager against moto)::

    backend = FakeBackend()
    repository = PostgreSQLSessionRepository(client=backend.client())

It serves the routes the clients use, keeps agent versions (`If-Match`, `if_version`) and one lease per session,
and records every request. It checks no identifiers and no bodies: the real backend's tests do.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import httpx
import orjson


class FakeBackend:
    """Sessions, agents (with versions), messages, batches, leases and memory batches of the backend's API, in memory.

    Attributes:
        requests: every request received, in order.
        fail: statuses to answer (one per request, in order) before serving normally again.
    """

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.agents: dict[tuple[str, str], dict[str, Any]] = {}
        self.messages: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
        self.context_windows: dict[tuple[str, str], dict[str, Any]] = {}
        self.lease_holder: str | None = None
        # Memories per actor by content (stored once), and the turns marked extracted: `(session_id, turn_id)`.
        self.memories: dict[str, dict[str, dict[str, Any]]] = {}
        self.extracted: set[tuple[str, str]] = set()
        self.requests: list[httpx.Request] = []
        self.fail: list[int] = []

    def client(self, **kwargs: Any) -> httpx.Client:
        """An `httpx.Client` whose requests this backend answers (the caller closes it)."""
        return httpx.Client(transport=httpx.MockTransport(self), base_url="http://backend", **kwargs)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (the `httpx.MockTransport` handler)."""
        self.requests.append(request)
        if self.fail:
            return self._json(self.fail.pop(0), {"title": "fault", "detail": "injected"})
        parts = [unquote(p) for p in request.url.raw_path.decode().split("?")[0].split("/")[2:]]
        body = orjson.loads(request.content) if request.content else None
        return self._route(request.method, parts, body, request)

    def paths(self) -> list[str]:
        """`METHOD path` of every request so far."""
        return [f"{r.method} {r.url.path}" for r in self.requests]

    @staticmethod
    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.Response(status, content=orjson.dumps(body), headers=headers)

    def _route(self, method: str, parts: list[str], body: Any, request: httpx.Request) -> httpx.Response:
        missing = self._json(404, {"detail": "not found"})
        match method, parts:
            case "POST", ["sessions"]:
                if body["session_id"] in self.sessions:
                    return self._json(409, {"detail": "exists"})
                self.sessions[body["session_id"]] = body
                return self._json(201, body)
            case "GET", ["sessions"]:
                return self._json(200, {"items": list(self.sessions.values()), "next_cursor": None})
            case "GET", ["sessions", sid]:
                return self._json(200, self.sessions[sid]) if sid in self.sessions else missing
            case "DELETE", ["sessions", sid]:
                return httpx.Response(204) if self.sessions.pop(sid, None) else missing
            case "POST", ["sessions", sid, "agents"]:
                agent = body | {"version": 1}
                self.agents[(sid, body["agent_id"])] = agent
                return self._json(201, agent)
            case "GET", ["sessions", sid, "agents", aid]:
                agent = self.agents.get((sid, aid))
                return self._json(200, agent) if agent else missing
            case "PUT", ["sessions", sid, "agents", aid]:
                return self._update_agent(sid, body, request.headers.get("If-Match"))
            case "POST", ["sessions", sid, "agents", aid, "messages"]:
                self.messages.setdefault((sid, aid), {})[body["message_id"]] = body
                return self._json(201, body)
            case "GET", ["sessions", sid, "agents", aid, "messages"]:
                if (sid, aid) not in self.agents:
                    return missing
                stored = sorted(self.messages.get((sid, aid), {}).items())
                offset = int(request.url.params.get("offset", 0))
                limit = int(request.url.params.get("limit", len(stored)))
                return self._json(200, [m for _, m in stored[offset : offset + limit]])
            case "GET", ["sessions", sid, "agents", aid, "messages", mid]:
                found = self.messages.get((sid, aid), {}).get(int(mid))
                return self._json(200, found) if found else missing
            case "GET", ["sessions", sid, "agents", aid, "context-window"]:
                window = self.context_windows.get((sid, aid))
                return self._json(200, {"items": self._resolve(sid, aid, window)}) if window else missing
            case "POST", ["sessions", sid, "batch"]:
                return self._batch(sid, body)
            case "POST", ["sessions", sid, "lease"]:
                if self.lease_holder not in (None, body["owner"]):
                    return self._json(409, {"detail": "busy"}, {"Retry-After": "1"})
                self.lease_holder = body["owner"]
                versions = {aid: a["version"] for (s, aid), a in self.agents.items() if s == sid}
                return self._json(200, {"session_id": sid, "owner": body["owner"], "agent_versions": versions})
            case "DELETE", ["sessions", sid, "lease"]:
                self.lease_holder = None
                return httpx.Response(204)
            case "POST", ["actors", actor_id, "memories", "batch"]:
                memories = self.memories.setdefault(actor_id, {})
                items = [memories.setdefault(m["content"], m | {"memory_id": m["content"]}) for m in body["memories"]]
                if body.get("turn"):
                    self.extracted.add((body["turn"]["session_id"], body["turn"]["turn_id"]))
                return self._json(200, {"items": items, "created": len(items)})
        return self._json(405, {"detail": f"{method} {parts} not faked"})

    def _update_agent(self, sid: str, agent: dict[str, Any], if_match: str | None) -> httpx.Response:
        stored = self.agents.get((sid, agent["agent_id"]))
        if stored is None:
            return self._json(404, {"detail": "not found"})
        if if_match is not None and int(if_match.strip('"')) != stored["version"]:
            return self._json(412, {"detail": "stale"})
        stored.update(agent | {"version": stored["version"] + 1})
        return self._json(200, stored)

    def _resolve(self, sid: str, aid: str, window: dict[str, Any]) -> list[dict[str, Any]]:
        stored = self.messages.get((sid, aid), {})
        items = [
            {"message_id": e.get("message_id"), "message": e["message"], "stored": False}
            if "message" in e
            else {"message_id": e["message_id"], "message": stored[e["message_id"]]["message"], "stored": True}
            for e in window["entries"]
        ]
        later = sorted(i for i in stored if i > window["upto"])
        return items + [{"message_id": i, "message": stored[i]["message"], "stored": True} for i in later]

    def _batch(self, sid: str, body: dict[str, Any]) -> httpx.Response:
        versions: dict[str, int] = {}
        created = 0
        for op in body["operations"]:
            if op["op"] == "update_agent":
                if_match = None if op.get("if_version") is None else f'"{op["if_version"]}"'
                response = self._update_agent(sid, op["agent"], if_match)
                if response.status_code != 200:
                    return response
                versions[op["agent"]["agent_id"]] = self.agents[(sid, op["agent"]["agent_id"])]["version"]
            elif op["op"] == "set_context_window":
                self.context_windows[(sid, op["agent_id"])] = op["window"]
            else:
                self.messages.setdefault((sid, op["agent_id"]), {})[op["message"]["message_id"]] = op["message"]
                created += op["op"] == "create_message"
        return self._json(200, {"created_messages": created, "existing_messages": 0, "agent_versions": versions})


def scripted_agent_env(backend_url: str, port: int, **env: str) -> tuple[dict[str, str], str]:
    """Environment and base URL of an agent service process on the scripted model, for tests and benchmarks.

    Args:
        backend_url: the session backend it talks to (`SESSION_BACKEND_URL`).
        port: the TCP port it listens on, on 127.0.0.1 (`PORT`).
        **env: more variables (settings), e.g. `SESSION_SPECULATIVE_TURNS="false"`; they override the defaults.

    Returns:
        `(environment, "http://127.0.0.1:<port>")`.
    """
    base = {"PORT": str(port), "SESSION_BACKEND_URL": backend_url, "MODEL_PROVIDER": "scripted"}
    return base | env, f"http://127.0.0.1:{port}"
