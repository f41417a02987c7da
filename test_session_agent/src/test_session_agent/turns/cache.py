"""The agent cache (bounded LRU with idle expiry) and how its agents are built from the backend's state."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import httpx
from cachetools import TTLCache
from strands import Agent
from strands.agent.conversation_manager import SlidingWindowConversationManager
from strands.models.model import Model

from ..models.factory import ProfileModels
from ..models.gated import LeaseGatedModel
from ..observability import AgentMetrics
from ..profiles import AgentProfile
from ..service.agent_memory import ActorMemory
from ..service.session_managers import ServiceSessionManager, build_session_manager
from ..service.tools import resolve_tools
from ..settings import AgentSettings
from .request import AGENT_ID


@dataclass
class CachedAgent:
    """A cached agent and its session manager (kept together: a turn passes the manager its context).

    Attributes:
        agent: the Strands agent.
        manager: its session manager.
        fingerprint: what the agent was built from (profile and its version, actor): a turn asking for another one
            rebuilds the agent, so an updated profile, or a turn routed to another profile, runs with that profile.
        memory: the actor's long-term memory, when the agent has one.
        routed: the session's last turn was routed to its active agent: the next one's lease decides, so it is not
            speculated.
    """

    agent: Agent
    manager: ServiceSessionManager
    fingerprint: tuple[str | None, ...] = ()
    memory: ActorMemory | None = None
    routed: bool = False


def fingerprint(profile: AgentProfile | None, actor_id: str | None) -> tuple[str | None, ...]:
    """What a cached agent must have been built from to serve a turn of `profile` by `actor_id`."""
    if profile is None:
        return (None, None, actor_id)
    return (profile.agent_id, profile.updated_at, actor_id)


class AgentCache:
    """Agents by session id: at most `size`, each dropped after `idle_seconds` unused (thread-safe).

    A turn `take`s its session's agent out (so no other turn can use it meanwhile) and `put`s it back when the turn
    ends well; an agent whose turn failed is not put back, so the next turn starts from what the backend holds.
    """

    def __init__(self, size: int, idle_seconds: float) -> None:
        self._cache: TTLCache[str, CachedAgent] = TTLCache(maxsize=size, ttl=idle_seconds)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Agents held now (the expired ones dropped first)."""
        with self._lock:
            self._cache.expire()
            return len(self._cache)

    def take(self, session_id: str) -> CachedAgent | None:
        """Remove and return the session's agent (None: none cached, or it expired)."""
        with self._lock:
            return self._cache.pop(session_id, None)

    def put(self, session_id: str, entry: CachedAgent) -> None:
        """Cache the session's agent; restarts its idle clock and makes it the youngest (LRU)."""
        with self._lock:
            self._cache[session_id] = entry

    def drop(self, session_id: str) -> None:
        """Forget the session's agent (it is rebuilt from the backend on next use)."""
        with self._lock:
            self._cache.pop(session_id, None)

    def expire(self) -> None:
        """Drop agents idle for longer than the idle timeout."""
        with self._lock:
            self._cache.expire()


class AgentBuilder:
    """Builds agents whose conversation is restored from (or created in) the backend.

    Args:
        settings: service settings (session manager, system prompt, session TTL).
        client: the service's backend client (shared by every session manager).
        model: the service's default model.
        metrics: where the agents' memory recalls past their budget are counted.
    """

    def __init__(self, settings: AgentSettings, client: httpx.Client, model: Model, metrics: AgentMetrics) -> None:
        self.settings = settings
        self.client = client
        self.model = model
        self.metrics = metrics
        self.models = ProfileModels(settings, model)

    def build(self, session_id: str, actor_id: str | None = None, profile: AgentProfile | None = None) -> CachedAgent:
        """Build the session's agent (blocking: it restores the conversation).

        Args:
            session_id: the agent's session (created with `SESSION_DEFAULT_TTL_SECONDS`, sliding, when new).
            actor_id: the actor of the turn: recorded on a new session, and whose long-term memory the agent has.
            profile: system prompt, model and tools of the agent; None: the service's defaults and no tools.

        Raises:
            SessionException: the backend is unreachable or refused.
        """
        manager = build_session_manager(self.settings, self.client, session_id, actor_id)
        memory = None
        if actor_id:
            memory = ActorMemory(actor_id, self.client, self.settings, self.metrics)
        system_prompt = profile.system_prompt if profile is not None else None
        tools: list[Any] | None = resolve_tools(profile.tools) if profile is not None else None
        agent = Agent(
            model=LeaseGatedModel(self.models.model_for(profile.model_config) if profile is not None else self.model),
            agent_id=AGENT_ID,
            system_prompt=system_prompt if system_prompt is not None else self.settings.system_prompt,
            tools=tools,
            session_manager=manager,
            memory_manager=memory.manager if memory is not None else None,
            conversation_manager=SlidingWindowConversationManager(window_size=40),
            callback_handler=None,
        )
        return CachedAgent(agent, manager, fingerprint(profile, actor_id), memory)
