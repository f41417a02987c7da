"""Strands `SessionRepository` over the session backend's REST API (`/v1/sessions/...`).

Every call is one synchronous HTTP request on a shared keep-alive `httpx.Client` (built by `_http.backend_client`);
`_http.checked` turns each answer into the Strands contract ("not found" → `None`, every other failure → a
`SessionException`); `_messages` turns message pages back into Strands objects.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx
from strands.session.session_repository import SessionRepository
from strands.types.session import Session, SessionAgent, SessionMessage, decode_bytes_values

from . import _json
from ._http import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, BackendClientOwner
from ._http import segment as _seg
from ._messages import session_messages

if TYPE_CHECKING:
    from strands.multiagent import MultiAgentBase

logger = logging.getLogger(__name__)


class PostgreSQLSessionRepository(BackendClientOwner, SessionRepository):
    """Stores Strands sessions, agents, messages and multi-agent state in PostgreSQL through the session backend.

    Args:
        base_url: URL of the session backend (`SESSION_BACKEND_URL`).
        api_key: bearer token sent as `Authorization` (`SESSION_BACKEND_API_KEY`); None sends none.
        timeout: per-request timeout in seconds, or an `httpx.Timeout`.
        client: an `httpx.Client` to use instead of creating one (e.g. bound to the ASGI app in tests); its
            `base_url` is then taken as is and it is not closed by `close()`.
        retries: attempts for idempotent calls when the backend is unreachable or answers 502/503/504.
        actor_id: actor recorded on sessions this repository creates.
        ttl_seconds: lifetime of sessions this repository creates (None: no expiry).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        client: httpx.Client | None = None,
        *,
        retries: int = 3,
        actor_id: str | None = None,
        ttl_seconds: int | None = None,
        **kwargs: Any,
    ) -> None:
        self._adopt_client(client, base_url, api_key, timeout, retries)
        self.actor_id = actor_id
        self.ttl_seconds = ttl_seconds
        # Last agent version seen per (session_id, agent_id): sent as If-Match so a stale write is refused.
        self._agent_versions: dict[tuple[str, str], int] = {}
        # Incarnation of each session as last read or created: a session deleted and re-created under the same id
        # has another, so a copy of the old one is told apart from the new one.
        self._incarnations: dict[str, int] = {}
        # Per (session_id, agent_id), whether the last message list said a context window is recorded (the backend's
        # `Context-Window` header; absent from an older backend: not known).
        self._windows_recorded: dict[tuple[str, str], bool] = {}

    def incarnation(self, session_id: str) -> int | None:
        """The incarnation of the session this repository last read or created (None: it has seen none)."""
        return self._incarnations.get(session_id)

    def _remember_incarnation(self, session_id: str, data: dict[str, Any]) -> None:
        if data.get("incarnation") is not None:
            self._incarnations[session_id] = int(data["incarnation"])

    def agent_version(self, session_id: str, agent_id: str) -> int | None:
        """The agent version this repository last read or wrote (None: it has seen none)."""
        return self._agent_versions.get((session_id, agent_id))

    # sessions

    def create_session(self, session: Session, **kwargs: Any) -> Session:
        """Create `session` in the backend (with this repository's `actor_id`/`ttl_seconds` unless given in kwargs).

        Raises:
            SessionException: the session exists already, or the backend refused or is unreachable.
        """
        body = session.to_dict()
        body["actor_id"] = kwargs.get("actor_id", self.actor_id)
        body["ttl_seconds"] = kwargs.get("ttl_seconds", self.ttl_seconds)
        if "metadata" in kwargs:
            body["metadata"] = kwargs["metadata"]
        logger.debug("session_id=<%s> | creating session", session.session_id)
        response = self._request("POST", "/v1/sessions", body=body, idempotent=False)
        assert response is not None
        self._remember_incarnation(session.session_id, _json.loads(response.content))
        return session

    def read_session(self, session_id: str, **kwargs: Any) -> Session | None:
        """Return the session, or None when it does not exist (or has expired)."""
        record = self.read_session_record(session_id)
        return Session.from_dict(record) if record is not None else None

    def read_session_record(self, session_id: str) -> dict[str, Any] | None:
        """The backend's session as stored (`actor_id`, `metadata`, `expires_at` too), or None when absent."""
        response = self._request("GET", f"/v1/sessions/{_seg(session_id)}", missing_ok=True)
        if response is None:
            return None
        record: dict[str, Any] = _json.loads(response.content)
        self._remember_incarnation(session_id, record)
        return record

    def delete_session(self, session_id: str, **kwargs: Any) -> None:
        """Delete the session with its agents, messages and multi-agent state.

        Raises:
            SessionNotFoundError: no such session.
            SessionException: the backend refused or is unreachable.
        """
        logger.debug("session_id=<%s> | deleting session", session_id)
        self._request("DELETE", f"/v1/sessions/{_seg(session_id)}")
        for key in [k for k in self._agent_versions if k[0] == session_id]:
            del self._agent_versions[key]
        self._incarnations.pop(session_id, None)
        for key in [k for k in self._windows_recorded if k[0] == session_id]:
            del self._windows_recorded[key]

    def list_sessions(
        self, actor_id: str | None = None, limit: int = 50, cursor: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """List sessions newest first (a page holds at most `limit` sessions and about 1 MiB).

        Returns:
            `{"items": [session dicts with actor_id, metadata, expires_at], "next_cursor": str | None}`.

        Raises:
            BackendRequestError: the backend refused the query (e.g. a cursor it never issued: status 422).
        """
        params: dict[str, Any] = {"limit": limit}
        if actor_id:
            params["actor_id"] = actor_id
        if cursor:
            params["cursor"] = cursor
        response = self._request("GET", "/v1/sessions", params=params)
        assert response is not None
        page: dict[str, Any] = _json.loads(response.content)
        return page

    # agents

    def _remember_version(self, session_id: str, response: httpx.Response) -> dict[str, Any]:
        data: dict[str, Any] = _json.loads(response.content)
        if "version" in data:
            self._agent_versions[(session_id, data["agent_id"])] = int(data["version"])
        return data

    def create_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Create the agent in the session.

        Raises:
            SessionException: no such session, the agent exists, or the backend refused or is unreachable.
        """
        logger.debug("session_id=<%s>, agent_id=<%s> | creating agent", session_id, session_agent.agent_id)
        response = self._request(
            "POST", f"/v1/sessions/{_seg(session_id)}/agents", body=session_agent.to_dict(), idempotent=False
        )
        assert response is not None
        self._remember_version(session_id, response)

    def read_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> SessionAgent | None:
        """Return the agent, or None when it (or its session) does not exist."""
        response = self._request("GET", f"/v1/sessions/{_seg(session_id)}/agents/{_seg(agent_id)}", missing_ok=True)
        if response is None:
            return None
        return SessionAgent.from_dict(self._remember_version(session_id, response))

    def update_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Replace the agent's state; conditional on the version this repository last saw, when it saw one.

        Raises:
            SessionNotFoundError: no such agent.
            SessionConflictError: another writer updated the agent since this repository read it.
            SessionException: the backend refused or is unreachable.
        """
        agent_id = session_agent.agent_id
        version = self._agent_versions.get((session_id, agent_id))
        headers = {"If-Match": f'"{version}"'} if version is not None else None
        response = self._request(
            "PUT",
            f"/v1/sessions/{_seg(session_id)}/agents/{_seg(agent_id)}",
            body=session_agent.to_dict(),
            headers=headers,
        )
        assert response is not None
        self._remember_version(session_id, response)

    # messages

    def create_message(self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any) -> None:
        """Append the message. Retried safely: the backend accepts an identical message at the same id.

        Raises:
            SessionConflictError: a different message is stored at that message_id.
            SessionException: no such agent, or the backend refused or is unreachable.
        """
        self._request(
            "POST",
            f"/v1/sessions/{_seg(session_id)}/agents/{_seg(agent_id)}/messages",
            body=session_message.to_dict(),
        )

    def read_message(self, session_id: str, agent_id: str, message_id: int, **kwargs: Any) -> SessionMessage | None:
        """Return the message, or None when it does not exist."""
        response = self._request(
            "GET", f"/v1/sessions/{_seg(session_id)}/agents/{_seg(agent_id)}/messages/{message_id}", missing_ok=True
        )
        return SessionMessage.from_dict(_json.loads(response.content)) if response else None

    def update_message(self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any) -> None:
        """Replace a message (Strands does this to redact it).

        Raises:
            SessionNotFoundError: no such message.
            SessionException: the backend refused or is unreachable.
        """
        self._request(
            "PUT",
            f"/v1/sessions/{_seg(session_id)}/agents/{_seg(agent_id)}/messages/{session_message.message_id}",
            body=session_message.to_dict(),
        )

    def list_messages(
        self, session_id: str, agent_id: str, limit: int | None = None, offset: int = 0, **kwargs: Any
    ) -> list[SessionMessage]:
        """Return messages ordered by message_id, from position `offset`, at most `limit` (None: all).

        An unknown session or agent gives an empty list.
        """
        params: dict[str, Any] = {"offset": offset}
        if limit is not None:
            params["limit"] = limit
        response = self._request(
            "GET", f"/v1/sessions/{_seg(session_id)}/agents/{_seg(agent_id)}/messages", params=params, missing_ok=True
        )
        if response is None:
            return []
        recorded = response.headers.get("context-window")
        if recorded is not None:
            self._windows_recorded[(session_id, agent_id)] = recorded == "recorded"
        return session_messages(response.content)

    def read_context_window(self, session_id: str, agent_id: str) -> list[dict[str, Any]] | None:
        """The agent's context window as its last turn recorded it, or None when none was recorded.

        No request when this repository's last list of the agent's messages said none is recorded (a restore lists
        them first).

        Returns:
            `[{"message_id": int | None, "message": Message, "stored": bool}]` in window order (bytes decoded).
        """
        if self._windows_recorded.get((session_id, agent_id)) is False:
            return None
        response = self._request(
            "GET", f"/v1/sessions/{_seg(session_id)}/agents/{_seg(agent_id)}/context-window", missing_ok=True
        )
        if response is None:
            return None
        return list(decode_bytes_values(_json.loads(response.content))["items"])

    # batches

    def apply_batch(
        self,
        session_id: str,
        operations: list[dict[str, Any]],
        lease_owner: str | None = None,
        *,
        incarnation: int | None = None,
        turn: dict[str, Any] | None = None,
        release_lease: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Apply writes in order in one backend transaction (all or nothing).

        Args:
            session_id: the session written to.
            operations: `{"op": "create_message" | "update_message", "agent_id", "message": SessionMessage dict}` or
                `{"op": "update_agent", "agent": SessionAgent dict, "if_version": int | None}`.
            lease_owner: write only while this owner holds the session's lease (fencing).
            incarnation: write only into this incarnation of the session id (not into a re-created session).
            turn: `{"turn_id", "idempotency_key", "result"}`: record the turn as committed with the writes.
            release_lease: end `lease_owner`'s lease with the commit (one request fewer than `release_lease()`).
            **kwargs: ignored (the Strands repository contract).

        Returns:
            `{"created_messages", "existing_messages", "agent_versions": {agent_id: version}}`; the versions are
            remembered for the next conditional agent update.

        Raises:
            SessionNotFoundError: the session or an agent or message does not exist.
            SessionConflictError: a different message at an id, an agent changed since it was read, the session
                was re-created since `incarnation`, or the turn was already decided.
            SessionException: the backend refused or is unreachable.
        """
        conditional = (
            incarnation is not None or turn is not None or any(op.get("if_version") is not None for op in operations)
        )
        body: dict[str, Any] = {"operations": operations}
        if lease_owner is not None:
            body["lease_owner"] = lease_owner
        if incarnation is not None:
            body["incarnation"] = incarnation
        if turn is not None:
            body["turn"] = turn
        if release_lease and lease_owner is not None:
            body["release_lease"] = True
        response = self._request(
            "POST",
            f"/v1/sessions/{_seg(session_id)}/batch",
            body=body,
            # a lost response to a committed conditional batch would turn its retry into a 409/412: retry unsent only
            idempotent=not conditional,
        )
        assert response is not None
        result: dict[str, Any] = _json.loads(response.content)
        for agent_id, version in result["agent_versions"].items():
            self._agent_versions[(session_id, agent_id)] = int(version)
        return result

    def resolve_turn(self, session_id: str, turn_id: str, **kwargs: Any) -> dict[str, Any] | None:
        """Decide the outcome of a turn whose batch was sent but whose answer was lost (retried while unreachable).

        Returns:
            `{"turn_id", "idempotency_key", "status": "committed" | "aborted", "result", "created_at"}`; an
            `aborted` turn's batch is refused should it still arrive. None: the session does not exist.

        Raises:
            BackendUnavailableError: the backend could not be reached within the retries.
        """
        response = self._request(
            "POST", f"/v1/sessions/{_seg(session_id)}/turns/{_seg(turn_id)}/resolve", missing_ok=True
        )
        return _json.loads(response.content) if response is not None else None

    # multi-agent state

    def create_multi_agent(self, session_id: str, multi_agent: MultiAgentBase, **kwargs: Any) -> None:
        """Store `multi_agent.serialize_state()` under `multi_agent.id`.

        Raises:
            SessionException: no such session, the multi-agent exists, or the backend refused or is unreachable.
        """
        body = {"id": multi_agent.id, "state": multi_agent.serialize_state()}
        self._request("POST", f"/v1/sessions/{_seg(session_id)}/multi-agents", body=body, idempotent=False)

    def read_multi_agent(self, session_id: str, multi_agent_id: str, **kwargs: Any) -> dict[str, Any] | None:
        """Return the multi-agent's serialized state, or None when it does not exist."""
        response = self._request(
            "GET", f"/v1/sessions/{_seg(session_id)}/multi-agents/{_seg(multi_agent_id)}", missing_ok=True
        )
        if response is None:
            return None
        state: dict[str, Any] = _json.loads(response.content)["state"]
        return state

    def update_multi_agent(self, session_id: str, multi_agent: MultiAgentBase, **kwargs: Any) -> None:
        """Replace the multi-agent's state with `multi_agent.serialize_state()`.

        Raises:
            SessionNotFoundError: no such multi-agent.
            SessionException: the backend refused or is unreachable.
        """
        body = {"id": multi_agent.id, "state": multi_agent.serialize_state()}
        self._request("PUT", f"/v1/sessions/{_seg(session_id)}/multi-agents/{_seg(multi_agent.id)}", body=body)
