"""Bodies of sessions and what they hold: agents, messages, multi-agent state (Strands' `to_dict()` forms)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from .common import MAX_TTL_SECONDS, Body, Identifier, JsonObject, MessageId, Timestamp


class SessionCreate(Body):
    """`Session.to_dict()` plus the backend's `actor_id`, `metadata` and `ttl_seconds` (seconds until expiry)."""

    session_id: Identifier
    session_type: Annotated[str, StringConstraints(pattern=r"^[A-Z_]{1,64}$")] = "AGENT"
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    actor_id: Identifier | None = None
    metadata: JsonObject = Field(default_factory=dict)
    ttl_seconds: Annotated[int, Field(ge=1, le=MAX_TTL_SECONDS)] | None = None


class SessionPublic(Body):
    """A stored session."""

    session_id: str
    session_type: str
    created_at: datetime
    updated_at: datetime
    actor_id: str | None
    metadata: JsonObject
    expires_at: datetime | None
    incarnation: int


class SessionFork(Body):
    """Fork a session into `new_session_id`; `ttl_seconds` and `actor_id` default to the source's."""

    new_session_id: Identifier
    ttl_seconds: Annotated[int, Field(ge=1, le=MAX_TTL_SECONDS)] | None = None
    actor_id: Identifier | None = None


class SessionForkPublic(Body):
    """The new session (`metadata.forked_from` names the source) and how many rows were copied into it."""

    session: SessionPublic
    agents: int
    messages: int
    multi_agents: int


MAX_METADATA_FILTERS = 16


class SessionFilter(Body):
    """How `GET /v1/sessions` orders and filters (query `order_by`, `awaiting_input`, `metadata.<key>=<value>`).

    Attributes:
        order_by: `created_at` (newest created first) or `updated_at` (most recently written first: every committed
            turn moves it), as LangGraph's thread search sorts.
        awaiting_input: true: only sessions with an agent holding a pending interrupt (waiting for a human); false:
            only those without; None: both.
        metadata: key → value: only sessions whose metadata holds each key with that value (compared as JSON text,
            strings unquoted: `metadata.tier=gold`, `metadata.priority=3`, `metadata.vip=true`).
    """

    order_by: Literal["created_at", "updated_at"] = "created_at"
    awaiting_input: bool | None = None
    metadata: Annotated[
        dict[Annotated[str, StringConstraints(min_length=1, max_length=256)], Annotated[str, Field(max_length=1024)]],
        Field(max_length=MAX_METADATA_FILTERS),
    ] = Field(default_factory=dict)


class SessionPage(Body):
    """One page of sessions, newest first; pass `next_cursor` back as `cursor` for the next page (null: last)."""

    items: list[SessionPublic]
    next_cursor: str | None


class AgentBody(Body):
    """`SessionAgent.to_dict()`."""

    agent_id: Identifier
    state: JsonObject = Field(default_factory=dict)
    conversation_manager_state: JsonObject = Field(default_factory=dict)
    internal_state: JsonObject = Field(default_factory=dict, alias="_internal_state")
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class AgentUpdate(AgentBody):
    """`SessionAgent.to_dict()` as Strands writes it on an update.

    Its state fields are required: a PUT without them would leave an agent Strands cannot restore.
    """

    state: JsonObject
    conversation_manager_state: JsonObject


class AgentPublic(AgentBody):
    """A stored agent; `version` counts its writes (send it back in `If-Match` for a conditional PUT)."""

    version: int


class MessageBody(Body):
    """`SessionMessage.to_dict()` (bytes already base64-encoded by Strands)."""

    message_id: MessageId
    message: JsonObject
    redact_message: JsonObject | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class MessagePublic(MessageBody):
    """A stored message."""

    created_at: datetime
    updated_at: datetime


class MultiAgentCreate(Body):
    """A multi-agent's id and its `serialize_state()`."""

    id: Identifier
    state: JsonObject


class MultiAgentUpdate(Body):
    """New state of a multi-agent; `id`, when present, must match the path."""

    id: Identifier | None = None
    state: JsonObject


class MultiAgentPublic(Body):
    """A stored multi-agent state."""

    id: str
    state: JsonObject


class SessionConvert(Body):
    """`POST /v1/sessions/{session_id}/convert`: the message log to Strands' snapshots, or back (#3663).

    Attributes:
        to: `snapshot`: each agent's log becomes its `SnapshotSessionManager` `snapshot_latest`; `messages`: each
            agent's `snapshot_latest` becomes its message log (the session is created when missing).
        storage_prefix: the `PostgreSQLStorage(prefix=...)` of the snapshot side ("" or ending with `/`).
        replace: overwrite what the target holds already (else 409, nothing written).
    """

    to: Literal["snapshot", "messages"]
    storage_prefix: Annotated[str, StringConstraints(max_length=512)] = ""
    replace: bool = False


class ConvertedAgent(Body):
    """An agent converted: its messages converted and the snapshot's storage key (source or target)."""

    agent_id: str
    messages: int
    key: str


class SessionConverted(Body):
    """The result of a conversion; the source is kept."""

    session_id: str
    to: Literal["snapshot", "messages"]
    agents: list[ConvertedAgent]
