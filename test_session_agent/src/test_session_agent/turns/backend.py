"""`ServiceBackend`: the session backend's service-only endpoints (leases, active agent, fork, session pages).

The Strands contract (sessions, agents, messages, batches) is `PostgreSQLSessionRepository`'s; this client holds what
only the agent service asks of the backend, on the same keep-alive `httpx.Client`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from .. import _json
from .._http import BackendClientOwner
from .._http import segment as _seg
from ..exceptions import SessionBusyError, SessionConflictError

logger = logging.getLogger(__name__)


class ServiceBackend(BackendClientOwner):
    """The agent service's own calls to the session backend (synchronous; one HTTP request each).

    Args:
        client: the service's `httpx.Client` (shared with its repository; not closed by `close()`).
        retries: attempts for idempotent calls when the backend is unreachable or answers 502/503/504.
    """

    def __init__(self, client: httpx.Client, *, retries: int = 3) -> None:
        self._adopt_client(client, str(client.base_url), None, client.timeout, retries)

    # leases

    def acquire_lease(
        self, session_id: str, owner: str, ttl_seconds: float, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Take, renew (same owner: leases are re-entrant) or take over (when expired) the session's lease.

        Args:
            session_id: the session (it need not exist yet).
            owner: the writer's token.
            ttl_seconds: lifetime of the lease from now, in seconds.
            idempotency_key: a client's Idempotency-Key; the answer of a turn committed under it comes back.

        Returns:
            `{"session_id", "owner", "locked_at", "expires_at", "agent_versions": {agent_id: version},
            "incarnation": int | None, "actor_id", "active_agent": {...} | None, "turn": {"response", ...} | None,
            "pending_extractions": [{turn_id, actor_id, agent_id, message_ids}]}` (turns whose memories are not
            stored yet: `TurnExtraction.finish_all`).

        Raises:
            SessionBusyError: another owner holds a live lease.
            SessionException: the backend refused or is unreachable.
        """
        try:
            response = self._request(
                "POST",
                f"/v1/sessions/{_seg(session_id)}/lease",
                body={"owner": owner, "ttl_seconds": ttl_seconds, "idempotency_key": idempotency_key},
            )
        except SessionConflictError as e:
            raise SessionBusyError(str(e)) from e
        assert response is not None
        lease: dict[str, Any] = _json.loads(response.content)
        return lease

    def release_lease(self, session_id: str, owner: str) -> None:
        """Release the lease if `owner` still holds it (a lease already gone is not an error)."""
        self._request("DELETE", f"/v1/sessions/{_seg(session_id)}/lease", params={"owner": owner}, missing_ok=True)

    # active agent (turn routing)

    def get_active_agent(self, session_id: str) -> dict[str, Any] | None:
        """The agent profile the session's turns go to: `{session_id, agent_id, expires_at, updated_at}`.

        Returns:
            None when none is set (or it lapsed), or the session does not exist.
        """
        response = self._request("GET", f"/v1/sessions/{_seg(session_id)}/active-agent", missing_ok=True)
        return _json.loads(response.content) if response is not None else None

    def set_active_agent(self, session_id: str, agent_id: str, ttl_seconds: float | None = None) -> dict[str, Any]:
        """Route the session's turns to the agent profile `agent_id` for `ttl_seconds` (None: until deleted).

        Raises:
            SessionNotFoundError: no such session.
            BackendRequestError: no such agent profile (status 422).
        """
        body = {"agent_id": agent_id, "ttl_seconds": ttl_seconds}
        response = self._request("PUT", f"/v1/sessions/{_seg(session_id)}/active-agent", body=body)
        assert response is not None
        logger.debug("session_id=<%s>, agent_id=<%s> | set active agent", session_id, agent_id)
        result: dict[str, Any] = _json.loads(response.content)
        return result

    def delete_active_agent(self, session_id: str) -> None:
        """Return the session to its own profile.

        Raises:
            SessionNotFoundError: no active agent is set (or no such session).
        """
        self._request("DELETE", f"/v1/sessions/{_seg(session_id)}/active-agent")

    # actors

    def erase_actor(self, actor_id: str) -> dict[str, Any]:
        """Erase everything of an actor (`DELETE /v1/actors/{actor_id}`, one transaction; idempotent, so retried).

        Returns:
            The receipt: `{erase_id, actor_id, erased_at, counts: {kind: rows}, session_ids}`.

        Raises:
            BackendUnavailableError: the backend is unreachable or failing.
        """
        response = self._request("DELETE", f"/v1/actors/{_seg(actor_id)}")
        assert response is not None
        receipt: dict[str, Any] = _json.loads(response.content)
        logger.debug("erase_id=<%s> | erased an actor", receipt.get("erase_id"))
        return receipt

    # memory extraction

    def store_extracted(
        self, actor_id: str, memories: list[dict[str, Any]], session_id: str, turn_id: str | None
    ) -> list[dict[str, Any]]:
        """Store what a committed turn's extraction yielded and mark the turn extracted, in one backend transaction.

        Idempotent (content an actor has is stored once; a turn already marked stays so), so it is retried.

        Args:
            actor_id: whose memories these are.
            memories: `{content, metadata, source}` dicts (none: the turn is only marked).
            session_id: the turn's session.
            turn_id: the turn (its record names the extraction pending until this call); None: a turn without a
                record (a snapshot session's), nothing is marked.

        Returns:
            The stored memories, in order (the one already stored where the content was a duplicate).

        Raises:
            SessionConflictError: the actor holds its most memories (409).
            BackendRequestError: a memory or its source was refused (422).
            BackendUnavailableError: the backend is unreachable or failing (the extraction stays pending).
        """
        body: dict[str, Any] = {"memories": memories}
        if turn_id is not None:
            body["turn"] = {"session_id": session_id, "turn_id": turn_id}
        elif not memories:
            return []
        response = self._request("POST", f"/v1/actors/{_seg(actor_id)}/memories/batch", body=body)
        assert response is not None
        items: list[dict[str, Any]] = _json.loads(response.content)["items"]
        return items

    # sessions

    def list_sessions_json(
        self,
        actor_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> bytes:
        """A page of sessions, newest first, as the backend's JSON bytes (passed on unchanged by the service).

        Args:
            actor_id: only this actor's sessions.
            limit: page size.
            cursor: `next_cursor` of the previous page.
            filters: the backend's other query parameters, passed as given (`order_by`, `awaiting_input`,
                `metadata.<key>`).

        Raises:
            BackendRequestError: the backend refused the query (e.g. a cursor it never issued: status 422).
        """
        params: dict[str, Any] = dict(filters or {}) | {"limit": limit}
        if actor_id:
            params["actor_id"] = actor_id
        if cursor:
            params["cursor"] = cursor
        response = self._request("GET", "/v1/sessions", params=params)
        assert response is not None
        return response.content

    def live_sessions(self, actor_id: str, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """The actor's live sessions, newest first (the backend's records), fetched page by page as iterated."""
        cursor: str | None = None
        while True:
            page = _json.loads(self.list_sessions_json(actor_id=actor_id, limit=page_size, cursor=cursor))
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def latest_session_id(self, actor_id: str) -> str | None:
        """The id of the actor's newest live session (None: it has none)."""
        page = _json.loads(self.list_sessions_json(actor_id=actor_id, limit=1))
        return str(page["items"][0]["session_id"]) if page["items"] else None

    def fork_session(self, session_id: str, new_session_id: str, *, actor_id: str | None = None) -> dict[str, Any]:
        """Copy the session with its agents, messages and multi-agent state under `new_session_id`, in the backend.

        Returns:
            `{"session": {...}, "agents", "messages", "multi_agents"}` (counts copied).

        Raises:
            SessionNotFoundError: no such session.
            SessionConflictError: `new_session_id` is taken.
            SessionException: the backend refused or is unreachable.
        """
        body = {"new_session_id": new_session_id, "actor_id": actor_id}
        response = self._request("POST", f"/v1/sessions/{_seg(session_id)}/fork", body=body, idempotent=False)
        assert response is not None
        result: dict[str, Any] = _json.loads(response.content)
        return result
