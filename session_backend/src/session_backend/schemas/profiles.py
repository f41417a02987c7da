"""Bodies of agent profiles (`/v1/agent-profiles`): shapes and sizes only; the agent service decides what exists."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from .common import Identifier, utf8_text

MAX_TOOLS = 128
MAX_SYSTEM_PROMPT_CHARS = 100_000

ProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_\-]{0,63}$")]
ToolName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")]


def _unique(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError("tool names must be unique")
    return names


class ModelConfig(BaseModel):
    """Which model a profile runs: all optional, the agent service's defaults fill the gaps."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    provider: ProviderName | None = None
    model_id: Annotated[str, StringConstraints(min_length=1, max_length=512), AfterValidator(utf8_text)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None


class ProfileBody(BaseModel):
    """A profile as written by PUT (a full replacement); POST takes the same plus an optional `agent_id`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, protected_namespaces=())

    name: Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(utf8_text)]
    system_prompt: (
        Annotated[str, StringConstraints(max_length=MAX_SYSTEM_PROMPT_CHARS), AfterValidator(utf8_text)] | None
    ) = None
    model_settings: ModelConfig = Field(default_factory=ModelConfig, alias="model_config")
    tools: Annotated[list[ToolName], Field(max_length=MAX_TOOLS), AfterValidator(_unique)] = Field(default_factory=list)
    shared: bool = Field(default=False, description="Whether actors other than the owner may read and use it.")


class ProfileCreate(ProfileBody):
    """A new profile; without `agent_id` the backend generates one (32 hex digits).

    `owner_actor_id` is the actor it belongs to (set once, here; None: nobody's). The agent service decides who may
    read, use, change or delete it.
    """

    agent_id: Identifier | None = None
    owner_actor_id: Identifier | None = None


class ProfileUpdate(ProfileBody):
    """A profile's new content; `agent_id`, when present, must match the path."""

    agent_id: Identifier | None = None


class ProfilePublic(ProfileBody):
    """A stored profile."""

    agent_id: str
    owner_actor_id: str | None = None
    created_at: datetime
    updated_at: datetime


class ProfilePage(BaseModel):
    """One page of profiles ordered by agent_id; pass `next_cursor` back as `cursor` (null: last page)."""

    items: list[ProfilePublic]
    next_cursor: str | None
