"""Sessions of the invoke API: each bound to one agent profile (session metadata `agent_profile_id`) at creation.

Blocking calls on the service's backend client: the routes run them on worker threads.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from strands.types.session import Session, SessionType

from ..exceptions import AgentProfileNotFoundError, SessionNotFoundOrExpiredError, SessionOfAnotherAgentError
from ..postgresql_session_repository import PostgreSQLSessionRepository
from ..profiles import AgentProfile, AgentProfileClient

logger = logging.getLogger(__name__)

PROFILE_METADATA_KEY = "agent_profile_id"
"""The session metadata key naming the agent profile a session belongs to."""


DEVICE_SESSION_SCAN = 1000
"""How many of a device's newest sessions are looked through for its session of a profile (beyond: a new one)."""


def latest_session_of(sessions: Iterable[dict[str, Any]], agent_id: str) -> str | None:
    """The id of the first session of the profile `agent_id` among `sessions` (records, newest first), or None.

    Only the first `DEVICE_SESSION_SCAN` records are looked at, so a device's turn costs a bounded scan.
    """
    for record in itertools.islice(sessions, DEVICE_SESSION_SCAN):
        if (record.get("metadata") or {}).get(PROFILE_METADATA_KEY) == agent_id:
            return str(record["session_id"])
    return None


@dataclass(frozen=True)
class ProfileTurn:
    """What a turn through a profile runs with: the profile, the session, and the actor (turn's, else session's)."""

    profile: AgentProfile
    session_id: str
    actor_id: str | None


class ProfileSessions:
    """Agent profiles, and the sessions created for them, in the session backend.

    Args:
        repository: the service's session repository (its HTTP client is shared).
        profiles: the service's agent profile client.
        ttl_seconds: lifetime of the sessions it creates; 0 or None: they never expire.
    """

    def __init__(
        self, repository: PostgreSQLSessionRepository, profiles: AgentProfileClient, ttl_seconds: int | None
    ) -> None:
        self.repository = repository
        self.profiles = profiles
        self.ttl_seconds = ttl_seconds or None

    def profile(self, agent_id: str, viewer: str | None = None) -> AgentProfile:
        """The stored profile, if `viewer` may use it.

        Args:
            agent_id: the profile's id.
            viewer: the actor asking (`AgentProfile.usable_by`); None: anyone's profile.

        Raises:
            AgentProfileNotFoundError: there is none with this id, or it is another actor's and not shared.
        """
        profile = self.profiles.get(agent_id)
        if profile is None or not profile.usable_by(viewer):
            raise AgentProfileNotFoundError(agent_id)
        return profile

    def create_session(self, agent_id: str, actor_id: str | None, viewer: str | None = None) -> dict[str, Any]:
        """Create a new session of the profile `agent_id` (which must exist and be usable by `viewer`).

        Returns:
            The backend's record of the session (`session_id`, `actor_id`, `metadata`, `expires_at`, ...).

        Raises:
            AgentProfileNotFoundError: no profile has this id (that `viewer` may use).
        """
        self.profile(agent_id, viewer)
        return self._new_session(agent_id, actor_id)

    def _new_session(self, agent_id: str, actor_id: str | None) -> dict[str, Any]:
        session_id = uuid.uuid4().hex
        self.repository.create_session(
            Session(session_id=session_id, session_type=SessionType.AGENT),
            actor_id=actor_id,
            ttl_seconds=self.ttl_seconds,
            metadata={PROFILE_METADATA_KEY: agent_id},
        )
        logger.debug("session_id=<%s>, agent_id=<%s> | created session of agent profile", session_id, agent_id)
        record = self.repository.read_session_record(session_id)
        if record is None:  # expired in between: only with a TTL shorter than a round trip
            raise SessionNotFoundOrExpiredError(session_id)
        return record

    def open_session(self, agent_id: str, session_id: str, owner: str | None = None) -> dict[str, Any]:
        """The record of an existing, live session of the profile `agent_id`.

        Args:
            agent_id: the profile the turn goes through.
            session_id: the session it names.
            owner: when set, the session must be this actor's: another's reads exactly as an absent one (checked
                before the profile, so nothing of it is told).

        Raises:
            SessionNotFoundOrExpiredError: no such session, it has expired, or it is not `owner`'s.
            SessionOfAnotherAgentError: the session belongs to another profile (or to none: a `/process` session).
        """
        record = self.repository.read_session_record(session_id)
        if record is None or (owner is not None and record.get("actor_id") != owner):
            raise SessionNotFoundOrExpiredError(session_id)
        owner = (record.get("metadata") or {}).get(PROFILE_METADATA_KEY)
        if owner != agent_id:
            raise SessionOfAnotherAgentError(session_id, agent_id, owner)
        return record

    def prepare_turn(
        self,
        agent_id: str,
        session_id: str | None,
        actor_id: str | None,
        viewer: str | None = None,
        *,
        require_actor: bool = False,
    ) -> ProfileTurn:
        """Check a turn through the profile `agent_id`: its profile, and its session (a new one when None).

        Args:
            agent_id: the profile.
            session_id: the session named; None: a new session of the profile, `actor_id`'s.
            actor_id: the turn's actor.
            viewer: the actor the profile must be visible to (its owner, or anyone when shared); None: any.
            require_actor: the session must be `actor_id`'s (a device's own): another's reads as not found.

        Raises:
            AgentProfileNotFoundError: no profile has this id (that `viewer` may use).
            SessionNotFoundOrExpiredError: `session_id` names no live session (of `actor_id`, with `require_actor`).
            SessionOfAnotherAgentError: the session belongs to another profile.
        """
        profile = self.profile(agent_id, viewer)
        if session_id is None:
            record = self._new_session(agent_id, actor_id)
        else:
            record = self.open_session(agent_id, session_id, actor_id if require_actor else None)
        return ProfileTurn(profile, record["session_id"], actor_id or record.get("actor_id"))
