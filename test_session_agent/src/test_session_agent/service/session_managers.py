"""`SESSION_MANAGER` (`repository` or `snapshot`): the session manager of the agent service's agents.

Also the snapshot side of a session (checkpoints, fork, history, delete), in PostgreSQL through `PostgreSQLStorage`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol, cast

import httpx
from strands.session.snapshot_session_manager import SnapshotSessionManager, _snapshot_key
from strands.types.agent import LocalAgent
from strands.types.session import Session, SessionType

from .. import _json
from ..exceptions import SessionConflictError
from ..postgresql_session_repository import PostgreSQLSessionRepository
from ..session_manager import PostgreSQLSessionManager, TurnContext
from ..settings import AgentSettings
from ..storage import PostgreSQLStorage

# Strands' own top-level namespace of snapshot sessions: a `SnapshotSessionManager` given the raw storage (as a
# library user does) writes under it too, so the service and such users see the same sessions.
SESSIONS_NAMESPACE = "session"


class ServiceSnapshotSessionManager(SnapshotSessionManager):
    """Strands' `SnapshotSessionManager`, with what the service's turn logic asks of a session manager.

    Every turn and every BidiAgent stop or connection restart writes an immutable checkpoint besides
    `snapshot_latest` (the snapshots `GET /sessions/{session_id}/snapshots` lists and fork starts from).
    """

    # Snapshot writes are neither fenced nor turn-recorded, and never end the lease (the turn releases it itself).
    unresolved_turn_id: str | None = None

    def begin_turn(self, context: TurnContext) -> None:
        """Accept a turn's context (see `PostgreSQLSessionManager.begin_turn`): snapshots have no use for it."""

    def end_turn(self) -> bool:
        """End the turn: its lease was not ended by a snapshot write (False)."""
        return False

    async def end_bidi_reply(self, agent: Any) -> None:
        """End a BidiAgent's reply (see `PostgreSQLSessionManager.end_bidi_reply`): its snapshot is already written."""

    def agent_version(self, session_id: str, agent_id: str) -> int | None:
        """No version to compare with the lease's: report one that never matches, so a cached agent is restored."""
        return -1

    def incarnation(self, session_id: str) -> int | None:
        """As `agent_version`: never matches, so each turn restores the latest snapshot."""
        return -1


ServiceSessionManager = PostgreSQLSessionManager | ServiceSnapshotSessionManager


def _checkpoint_always(*, agent_data: LocalAgent, **kwargs: Any) -> bool:
    return True


@lru_cache(maxsize=8)
def snapshot_storage(base_url: str, api_key: str | None) -> PostgreSQLStorage:
    """The process's storage view of snapshot sessions (one per backend, so its HTTP clients are shared)."""
    return PostgreSQLStorage(base_url, api_key).namespace(SESSIONS_NAMESPACE)


def _storage(settings: AgentSettings) -> PostgreSQLStorage:
    return snapshot_storage(settings.backend_url, settings.backend_api_key)


def build_session_manager(
    settings: AgentSettings, client: httpx.Client, session_id: str, actor_id: str | None = None
) -> ServiceSessionManager:
    """The session manager `SESSION_MANAGER` names, for `session_id` (blocking: it reads or creates the session).

    A snapshot session also gets its row in `/v1/sessions` (metadata `session_manager: snapshot`), so listing,
    ownership, expiry, leases and fork treat both kinds alike.

    Raises:
        SessionException: the backend is unreachable or refused.
    """
    if settings.session_manager == "repository":
        # Sliding expiry: every committed turn moves the session's expiry (the backend's write function does).
        ttl = settings.session_default_ttl_seconds or None
        return PostgreSQLSessionManager(session_id, client=client, actor_id=actor_id, ttl_seconds=ttl)
    repository = PostgreSQLSessionRepository(client=client)
    if repository.read_session(session_id) is None:
        try:
            session = Session(session_id=session_id, session_type=SessionType.AGENT)
            # Sliding expiry: every snapshot the session's turns save moves it (the backend's storage trigger does).
            ttl = settings.session_default_ttl_seconds or None
            metadata = {"session_manager": "snapshot"}
            repository.create_session(session, actor_id=actor_id, metadata=metadata, ttl_seconds=ttl)
        except SessionConflictError:
            pass  # created meanwhile by another request (a new session starts empty: the backend clears its objects)
    return ServiceSnapshotSessionManager(
        session_id, storage=_storage(settings), snapshot_trigger=_checkpoint_always, bidi_agent_save_latest_on="message"
    )


class _AgentRef:
    """What `SnapshotSessionManager.list_snapshot_ids` reads of an agent: its id."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id


def snapshot_created_at(snapshot_id: str) -> datetime:
    """When a snapshot was taken: the millisecond timestamp of its UUIDv7 id."""
    return datetime.fromtimestamp(int(snapshot_id.replace("-", "")[:12], 16) / 1000, UTC)


async def list_snapshots(settings: AgentSettings, session_id: str, agent_id: str) -> list[str]:
    """Ids of the agent's immutable snapshots, oldest first (none for repository sessions)."""
    manager = SnapshotSessionManager(session_id, storage=_storage(settings))
    return await manager.list_snapshot_ids(cast(LocalAgent, _AgentRef(agent_id)))


class SessionForker(Protocol):
    """What a fork needs of the backend (the service's `ServiceBackend`)."""

    def fork_session(self, session_id: str, new_session_id: str, *, actor_id: str | None = None) -> dict[str, Any]:
        """Copy the session's rows under `new_session_id`; the counts copied."""
        ...


class SnapshotNotFoundError(LookupError):
    """The session has no snapshot with that id."""


async def fork_session(
    settings: AgentSettings,
    backend: SessionForker,
    session_id: str,
    new_session_id: str,
    agent_id: str,
    *,
    snapshot_id: str | None = None,
    actor_id: str | None = None,
) -> int:
    """Create `new_session_id` from the session's latest state, or from one of its snapshots; the source is untouched.

    The backend copies the session's rows (a repository session's agents and messages) in one statement; a snapshot
    session's objects are then copied server-side too (`snapshot_id` None), or the one snapshot becomes the new
    session's latest and only checkpoint.

    Returns:
        How many messages the new session starts with.

    Raises:
        SnapshotNotFoundError: `snapshot_id` names no snapshot of the session.
        SessionNotFoundError: no such session.
        SessionConflictError: `new_session_id` is taken.
    """
    storage = _storage(settings)
    snapshot = None
    if snapshot_id is not None:
        snapshot = await storage.read(_snapshot_key(session_id, agent_id, snapshot_id=snapshot_id))
        if snapshot is None:
            raise SnapshotNotFoundError(f"session {session_id!r} has no snapshot {snapshot_id!r}")
    copied = await asyncio.to_thread(backend.fork_session, session_id, new_session_id, actor_id=actor_id)
    if settings.session_manager == "repository" and snapshot is None:
        return int(copied["messages"])
    if snapshot is None:
        await storage.copy(session_id, new_session_id)
        snapshot = await storage.read(_snapshot_key(new_session_id, agent_id, snapshot_id=None))
    else:
        await storage.write(_snapshot_key(new_session_id, agent_id, snapshot_id=None), snapshot)
        await storage.write(_snapshot_key(new_session_id, agent_id, snapshot_id=snapshot_id), snapshot)
    return len(_json.loads(snapshot)["data"].get("messages", [])) if snapshot else 0


def repository_history(
    repository: PostgreSQLSessionRepository, session_id: str, agent_id: str
) -> list[dict[str, Any]] | None:
    """Messages of the session's agent in order, as `{message_id, role, content, created_at}` (blocking).

    A redacted message is shown as redacted. Returns None when the session does not exist.
    """
    if repository.read_session(session_id) is None:
        return None
    out = []
    for m in repository.list_messages(session_id, agent_id):
        shown = m.to_dict()
        message = shown["redact_message"] or shown["message"]
        out.append(
            {
                "message_id": m.message_id,
                "role": message["role"],
                "content": message["content"],
                "created_at": m.created_at,
            }
        )
    return out


async def snapshot_history(settings: AgentSettings, session_id: str, agent_id: str) -> list[dict[str, Any]]:
    """The messages of a snapshot session's latest snapshot, as `{message_id, role, content, created_at}`."""
    data = await _storage(settings).read(_snapshot_key(session_id, agent_id, snapshot_id=None))
    if data is None:
        return []
    snapshot = _json.loads(data)
    return [
        {"message_id": i, "role": m["role"], "content": m["content"], "created_at": snapshot["created_at"]}
        for i, m in enumerate(snapshot["data"].get("messages", []))
    ]
