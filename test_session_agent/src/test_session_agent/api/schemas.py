"""Request and response bodies of the agent service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

# The identifier rule, shared with the backend.
from service_kit.identifiers import IDENTIFIER_PATTERN as IDENTIFIER_PATTERN
from service_kit.identifiers import Identifier as Identifier


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("prompt must not be empty")
    # Checked before any work: PostgreSQL's text cannot hold NUL, JSON cannot carry a lone surrogate, and a turn
    # refused at commit would leave a session behind.
    if "\x00" in value:
        raise ValueError("prompt must not contain the NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError("prompt must be valid Unicode (no lone surrogates)") from e
    return value


Prompt = Annotated[str, StringConstraints(min_length=1), AfterValidator(_not_blank)]
"""A user's message (a turn's prompt, a `/ws` text): not blank, no NUL, valid Unicode."""


class ProcessRequest(BaseModel):
    """One user turn. A missing `session_id` starts a new session; `actor_id` is recorded on new sessions."""

    model_config = ConfigDict(extra="forbid")

    prompt: Prompt
    session_id: Identifier | None = None
    actor_id: Identifier | None = None


class TurnStatus(BaseModel):
    """How the turn was served."""

    session_managed: bool = True
    conversation_length: int
    agent_id: str
    cached_agent: bool
    model_provider: str
    duration_ms: float
    usage: dict[str, Any] = Field(default_factory=dict)
    replayed: bool = False
    injected_memory: str | None = None
    # Why the model stopped: "end_turn", or "max_tokens" for a reply cut at the model's limit (answered and stored).
    stop_reason: str | None = None


class ProcessResponse(BaseModel):
    """The assistant's reply."""

    session_id: str
    response: str
    status: TurnStatus


class ActiveAgentSet(BaseModel):
    """Send a session's turns to the agent profile `agent_id`, for `ttl_seconds` (absent: until deleted)."""

    model_config = ConfigDict(extra="forbid")

    agent_id: Identifier
    ttl_seconds: Annotated[float, Field(gt=0, le=10 * 365 * 24 * 3600)] | None = None


class ActiveAgentPublic(BaseModel):
    """The agent profile a session's turns go to, until `expires_at` (null: until deleted)."""

    session_id: str
    agent_id: str
    expires_at: str | None
    updated_at: str


class HistoryMessage(BaseModel):
    """One stored message (the redacted form when Strands redacted it)."""

    message_id: int
    role: str
    content: list[dict[str, Any]]
    created_at: str


class HistoryResponse(BaseModel):
    """A session's conversation in order."""

    session_id: str
    messages: list[HistoryMessage]


UUID7_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"


class SnapshotInfo(BaseModel):
    """One immutable snapshot (checkpoint) of a session's agent."""

    snapshot_id: str
    created_at: datetime


class SnapshotList(BaseModel):
    """A session's snapshots, oldest first."""

    session_id: str
    items: list[SnapshotInfo]


class ForkRequest(BaseModel):
    """Fork from the latest state, or from `snapshot_id`; `new_session_id` defaults to a new id."""

    model_config = ConfigDict(extra="forbid")

    snapshot_id: Annotated[str, StringConstraints(pattern=UUID7_PATTERN)] | None = None
    new_session_id: Identifier | None = None
    actor_id: Identifier | None = None


class ForkResponse(BaseModel):
    """The new session."""

    session_id: str
    forked_from: str
    snapshot_id: str | None
    conversation_length: int
