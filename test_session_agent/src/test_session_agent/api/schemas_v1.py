"""Request and response bodies of the `/api/v1` routes: agent profiles, their sessions and turns, actor memories."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from strands.memory import MemoryEntry

from ..service.tools import TOOLS, unknown_tools
from ..settings import ProviderName
from .schemas import ProcessRequest, TurnStatus

# The backend's limits on a stored profile, checked here so a refusal is the caller's 422.
MAX_TOOLS = 128
MAX_SYSTEM_PROMPT_CHARS = 100_000


def _known_tools(names: list[str]) -> list[str]:
    missing = unknown_tools(names)
    if missing:
        raise ValueError(f"unknown tools {missing}; known tools: {sorted(TOOLS)}")
    if len(set(names)) != len(names):
        raise ValueError("tool names must be unique")
    return names


class ModelSettings(BaseModel):
    """A profile's `model_config`: every key optional, the service's settings fill the gaps."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    provider: ProviderName | None = None
    model_id: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None


class AgentProfileBody(BaseModel):
    """A profile as written by POST and PUT (PUT replaces it whole: fields left out are reset)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=())

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    system_prompt: Annotated[str, StringConstraints(max_length=MAX_SYSTEM_PROMPT_CHARS)] | None = None
    model_settings: ModelSettings = Field(default_factory=ModelSettings, alias="model_config")
    tools: Annotated[list[str], Field(max_length=MAX_TOOLS), AfterValidator(_known_tools)] = Field(default_factory=list)
    shared: bool = Field(default=False, description="Other actors may read and use it (never change or delete it).")

    def client_arguments(self) -> dict[str, Any]:
        """Keyword arguments of `AgentProfileClient.create` / `update`."""
        return {
            "name": self.name,
            "system_prompt": self.system_prompt,
            "model_config": self.model_settings.model_dump(exclude_none=True),
            "tools": self.tools,
            "shared": self.shared,
        }


class AgentProfilePublic(BaseModel):
    """A stored profile."""

    model_config = ConfigDict(populate_by_name=True, protected_namespaces=())

    agent_id: str
    name: str
    system_prompt: str | None
    model_settings: dict[str, Any] = Field(alias="model_config")
    tools: list[str]
    owner_actor_id: str | None = None
    shared: bool = False
    created_at: str
    updated_at: str


class AgentProfilePage(BaseModel):
    """One page of profiles ordered by agent_id; pass `next_cursor` as `cursor` for the next (None: the last)."""

    items: list[AgentProfilePublic]
    next_cursor: str | None


class SessionCreated(BaseModel):
    """A new session of an agent profile."""

    session_id: str
    agent_id: str
    actor_id: str | None
    expires_at: str | None


class InvokeRequest(ProcessRequest):
    """One user turn through an agent profile: no `session_id` starts a new session of the profile."""


class InvokeResponse(BaseModel):
    """The agent's reply."""

    session_id: str
    agent_id: str
    response: str
    status: TurnStatus


class MemoryCreate(BaseModel):
    """A memory to store for an actor."""

    model_config = ConfigDict(extra="forbid")

    content: Annotated[str, StringConstraints(min_length=1, max_length=16_384, pattern=r"\S")]
    metadata: dict[str, Any] = Field(default_factory=dict)


class MemoryPublic(BaseModel):
    """A stored memory; `score` ranks search results (None outside a search).

    `source`: the session, agent and message ids it was extracted from (None: added directly, or session deleted).
    """

    memory_id: uuid.UUID
    content: str
    metadata: dict[str, Any]
    source: dict[str, Any] | None = None
    score: float | None = None
    created_at: str

    @classmethod
    def from_entry(cls, entry: MemoryEntry) -> MemoryPublic:
        """The memory of a `PostgreSQLMemoryStore` entry (whose metadata carries id, score and time)."""
        metadata = dict(entry.metadata or {})
        fields = {key: metadata.pop(key, None) for key in ("memory_id", "score", "created_at")}
        return cls(content=entry.content, metadata=metadata, source=metadata.pop("memory_source", None), **fields)


class MemoryPage(BaseModel):
    """An actor's memories: best match first with a query, else newest first."""

    items: list[MemoryPublic]


class ErasureReceipt(BaseModel):
    """What erasing an actor deleted, when, and the erase id the backend keeps for audit (no content).

    `counts` has rows per kind: `sessions`, `agents`, `messages`, `multi_agents`, `turns`, `leases`, `active_agents`,
    `storage_objects`, `memories`, `profiles`.
    """

    erase_id: uuid.UUID
    actor_id: str
    erased_at: str
    counts: dict[str, int]
    session_ids: list[str]
