"""Agent profiles stored by the session backend (`/v1/agent-profiles`): `AgentProfile` and its synchronous client."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import orjson

from ._http import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, BackendClientOwner
from ._http import segment as _seg

logger = logging.getLogger(__name__)

PATH = "/v1/agent-profiles"


@dataclass(frozen=True)
class AgentProfile:
    """A stored profile: what an agent is (name, system prompt), which model it runs and which tools it may use.

    `model_config` holds any of `provider`, `model_id`, `max_tokens`, `temperature`; absent keys mean the agent
    service's defaults. Timestamps are ISO 8601 strings in UTC. `owner_actor_id` is the actor that created it (None:
    created without access control); `shared` lets other actors read and use it.
    """

    agent_id: str
    name: str
    system_prompt: str | None = None
    model_config: dict[str, Any] = field(default_factory=dict)
    tools: list[str] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    owner_actor_id: str | None = None
    shared: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentProfile:
        """Build a profile from the backend's JSON (unknown keys ignored)."""
        return cls(
            agent_id=str(data["agent_id"]),
            name=str(data["name"]),
            system_prompt=data.get("system_prompt"),
            model_config=dict(data.get("model_config") or {}),
            tools=list(data.get("tools") or []),
            created_at=str(data.get("created_at", "")),
            updated_at=str(data.get("updated_at", "")),
            owner_actor_id=data.get("owner_actor_id"),
            shared=bool(data.get("shared", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The profile as the backend's JSON."""
        return asdict(self)

    def usable_by(self, actor_id: str | None) -> bool:
        """Whether `actor_id` may read and use this profile: its owner's, shared, or nobody's (None: anyone may)."""
        return actor_id is None or self.shared or self.owner_actor_id in (None, actor_id)


@dataclass(frozen=True)
class ProfilePage:
    """One page of profiles ordered by agent_id; `next_cursor` fetches the next (None: this is the last)."""

    items: list[AgentProfile]
    next_cursor: str | None


class AgentProfileClient(BackendClientOwner):
    """Create, read, list, replace and delete agent profiles in the session backend.

    Synchronous, like Strands' session repository: the agent service calls it from its worker threads. The backend
    checks shapes and sizes (422); which providers and tools exist is for the caller to check first.

    Args:
        base_url: URL of the session backend (`SESSION_BACKEND_URL`).
        api_key: bearer token (`SESSION_BACKEND_API_KEY`); None sends none.
        timeout: per-request timeout in seconds, or an `httpx.Timeout`.
        client: an `httpx.Client` to use instead of creating one (not closed by `close()`).
        retries: attempts for idempotent calls when the backend is unreachable or answers 502/503/504.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        client: httpx.Client | None = None,
        *,
        retries: int = 3,
    ) -> None:
        """Create the client (no request is sent)."""
        self._adopt_client(client, base_url, api_key, timeout, retries)

    def __enter__(self) -> AgentProfileClient:
        """Use as a context manager that closes the client at exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the client."""
        self.close()

    def create(
        self,
        name: str,
        *,
        system_prompt: str | None = None,
        model_config: dict[str, Any] | None = None,
        tools: list[str] | None = None,
        agent_id: str | None = None,
        shared: bool = False,
        owner_actor_id: str | None = None,
    ) -> AgentProfile:
        """Store a new profile.

        Args:
            name: display name (1 to 200 characters).
            system_prompt: the agent's system prompt (at most 100,000 characters).
            model_config: any of `provider`, `model_id`, `max_tokens`, `temperature`.
            tools: tool names (unique, at most 128).
            agent_id: the id to use; None lets the backend generate one (32 hex digits).
            shared: whether actors other than the owner may read and use it.
            owner_actor_id: the actor it belongs to (set once); None: nobody's.

        Returns:
            The stored profile.

        Raises:
            SessionConflictError: `agent_id` is taken.
            BackendRequestError: the backend refused the profile (422).
            BackendUnavailableError: the backend is unreachable or failing.
        """
        body = _body(name, system_prompt, model_config, tools, shared)
        body |= ({"agent_id": agent_id} if agent_id else {}) | (
            {"owner_actor_id": owner_actor_id} if owner_actor_id else {}
        )
        # Without a chosen id a retry could create a second profile: only resend what never reached the server.
        response = self._request("POST", PATH, body=body, idempotent=agent_id is not None)
        assert response is not None
        profile = AgentProfile.from_dict(orjson.loads(response.content))
        logger.debug("agent_id=<%s> | created agent profile", profile.agent_id)
        return profile

    def get(self, agent_id: str) -> AgentProfile | None:
        """Read a profile; None when there is none with this id."""
        response = self._request("GET", f"{PATH}/{_seg(agent_id)}", missing_ok=True)
        return AgentProfile.from_dict(orjson.loads(response.content)) if response is not None else None

    def list_profiles(
        self, *, limit: int = 50, cursor: str | None = None, visible_to: str | None = None
    ) -> ProfilePage:
        """One page of profiles ordered by agent_id.

        Args:
            limit: page size (1 to 1000).
            cursor: `next_cursor` of the previous page; None for the first.
            visible_to: an actor: only the profiles it may use (`AgentProfile.usable_by`); None: all.

        Returns:
            The page.
        """
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        params |= {"visible_to": visible_to} if visible_to else {}
        response = self._request("GET", PATH, params=params)
        assert response is not None
        data = orjson.loads(response.content)
        return ProfilePage([AgentProfile.from_dict(p) for p in data["items"]], data["next_cursor"])

    def iter_all(self, page_size: int = 200) -> Iterator[AgentProfile]:
        """Every profile, ordered by agent_id, fetched a page at a time."""
        cursor: str | None = None
        while True:
            page = self.list_profiles(limit=page_size, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def update(
        self,
        agent_id: str,
        name: str,
        *,
        system_prompt: str | None = None,
        model_config: dict[str, Any] | None = None,
        tools: list[str] | None = None,
        shared: bool = False,
    ) -> AgentProfile | None:
        """Replace a profile's content (fields left out are reset to their defaults; the owner stays).

        Returns:
            The stored profile, or None when there is none with this id.

        Raises:
            BackendRequestError: the backend refused the profile (422).
            BackendUnavailableError: the backend is unreachable or failing.
        """
        body = _body(name, system_prompt, model_config, tools, shared)
        response = self._request("PUT", f"{PATH}/{_seg(agent_id)}", body=body, missing_ok=True)
        if response is None:
            return None
        logger.debug("agent_id=<%s> | updated agent profile", agent_id)
        return AgentProfile.from_dict(orjson.loads(response.content))

    def delete(self, agent_id: str) -> bool:
        """Delete a profile; False when there was none with this id."""
        deleted = self._request("DELETE", f"{PATH}/{_seg(agent_id)}", missing_ok=True) is not None
        logger.debug("agent_id=<%s>, deleted=<%s> | deleted agent profile", agent_id, deleted)
        return deleted


def _body(
    name: str, system_prompt: str | None, model_config: dict[str, Any] | None, tools: list[str] | None, shared: bool
) -> dict[str, Any]:
    return {
        "name": name,
        "system_prompt": system_prompt,
        "model_config": model_config or {},
        "tools": tools or [],
        "shared": shared,
    }
