"""Request and response bodies of the REST API: Strands' `to_dict()` forms plus the backend's own fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator

IDENTIFIER_PATTERN = r"^[A-Za-z0-9._:@+=\-]{1,256}$"


def _not_dot(value: str) -> str:
    if value in (".", ".."):
        raise ValueError("identifier must not be '.' or '..'")
    return value


Identifier = Annotated[
    str,
    StringConstraints(pattern=IDENTIFIER_PATTERN, min_length=1, max_length=256),
    AfterValidator(_not_dot),
]
"""1 to 256 characters from `A-Z a-z 0-9 . _ : @ + = -`, not `.` or `..` (README.md, Session backend API)."""


def _storable_timestamp(value: datetime) -> datetime:
    """Return `value` in UTC when PostgreSQL stores it as that instant.

    Raises:
        ValueError: it falls outside years 1 to 9999 once in UTC, or it is `datetime.min`/`datetime.max`, which the
            driver would store as -infinity/infinity (read back as null).
    """
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as e:
        raise ValueError("timestamp is outside years 1 to 9999 in UTC") from e
    naive = utc.replace(tzinfo=None)
    if naive in (datetime.min, datetime.max):
        raise ValueError("timestamp must lie strictly between years 1 and 9999 (the extremes mean infinity)")
    return utc


Timestamp = Annotated[datetime, AfterValidator(_storable_timestamp)]
"""An ISO 8601 instant (no offset means UTC), strictly inside years 1 to 9999 in UTC."""

MessageId = Annotated[int, Field(ge=0, le=2_147_483_647)]
JsonObject = dict[str, Any]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class SessionCreate(_Body):
    """`Session.to_dict()` plus the backend's `actor_id`, `metadata` and `ttl_seconds` (seconds until expiry)."""

    session_id: Identifier
    session_type: Annotated[str, StringConstraints(pattern=r"^[A-Z_]{1,64}$")] = "AGENT"
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    actor_id: Identifier | None = None
    metadata: JsonObject = Field(default_factory=dict)
    ttl_seconds: Annotated[int, Field(ge=1, le=10 * 365 * 24 * 3600)] | None = None


class SessionPublic(_Body):
    """A stored session."""

    session_id: str
    session_type: str
    created_at: datetime
    updated_at: datetime
    actor_id: str | None
    metadata: JsonObject
    expires_at: datetime | None
    incarnation: int


class SessionFork(_Body):
    """Fork a session into `new_session_id`; `ttl_seconds` and `actor_id` default to the source's."""

    new_session_id: Identifier
    ttl_seconds: Annotated[int, Field(ge=1, le=10 * 365 * 24 * 3600)] | None = None
    actor_id: Identifier | None = None


class SessionForkPublic(_Body):
    """The new session (`metadata.forked_from` names the source) and how many rows were copied into it."""

    session: SessionPublic
    agents: int
    messages: int
    multi_agents: int


class SessionPage(_Body):
    """One page of sessions, newest first; pass `next_cursor` back as `cursor` for the next page (null: last)."""

    items: list[SessionPublic]
    next_cursor: str | None


class AgentBody(_Body):
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


class MessageBody(_Body):
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


class MultiAgentCreate(_Body):
    """A multi-agent's id and its `serialize_state()`."""

    id: Identifier
    state: JsonObject


class MultiAgentUpdate(_Body):
    """New state of a multi-agent; `id`, when present, must match the path."""

    id: Identifier | None = None
    state: JsonObject


class MultiAgentPublic(_Body):
    """A stored multi-agent state."""

    id: str
    state: JsonObject


class CreateMessageOp(_Body):
    """Append a message (idempotent for identical content, like `POST .../messages`)."""

    op: Literal["create_message"]
    agent_id: Identifier
    message: MessageBody


class UpdateMessageOp(_Body):
    """Replace a message (like `PUT .../messages/{message_id}`)."""

    op: Literal["update_message"]
    agent_id: Identifier
    message: MessageBody


class UpdateAgentOp(_Body):
    """Replace an agent's state (like `PUT .../agents/{agent_id}`); `if_version` makes it conditional."""

    op: Literal["update_agent"]
    agent: AgentBody
    if_version: Annotated[int, Field(ge=1)] | None = None


BatchOperation = Annotated[CreateMessageOp | UpdateMessageOp | UpdateAgentOp, Field(discriminator="op")]


LeaseOwner = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,256}$")]
"""1 to 256 printable ASCII characters (no spaces)."""


TurnId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,256}$")]
"""1 to 256 printable ASCII characters (no spaces): a turn id or an Idempotency-Key."""


class TurnRecord(_Body):
    """The turn a batch commits: its id, the client's Idempotency-Key (if any) and the answer given for it."""

    turn_id: TurnId
    idempotency_key: TurnId | None = None
    result: JsonObject = Field(default_factory=dict)


class TurnPublic(_Body):
    """A turn's record: `committed` by its batch, or `aborted` when its writer gave it up before the batch landed."""

    turn_id: str
    idempotency_key: str | None
    status: Literal["committed", "aborted"]
    result: JsonObject | None
    created_at: datetime


class BatchRequest(_Body):
    """Writes of one agent turn, applied in order in one transaction: all of them or none.

    With `lease_owner`, the batch is refused (409) unless that owner holds the session's live lease; with
    `incarnation`, it is refused (412) when the session was deleted and re-created since the writer read it; with
    `turn`, the turn is recorded as committed (409 when it was given up, or its Idempotency-Key already committed);
    with `release_lease` (needs `lease_owner`), that owner's lease ends with the commit, saving the writer the
    release request.
    """

    operations: Annotated[list[BatchOperation], Field(min_length=1, max_length=1000)]
    lease_owner: LeaseOwner | None = None
    incarnation: int | None = None
    turn: TurnRecord | None = None
    release_lease: StrictBool = False

    @model_validator(mode="after")
    def _release_needs_owner(self) -> BatchRequest:
        if self.release_lease and self.lease_owner is None:
            raise ValueError("release_lease needs lease_owner")
        return self


class LeaseRequest(_Body):
    """Take or renew a session's lease: `owner` is any token unique to the writer, `ttl_seconds` its lifetime."""

    owner: LeaseOwner
    ttl_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    idempotency_key: TurnId | None = None


class ActiveAgentSet(_Body):
    """Route a session's turns to an agent profile, for `ttl_seconds` (absent: until deleted)."""

    agent_id: Identifier
    ttl_seconds: Annotated[float, Field(gt=0, le=10 * 365 * 24 * 3600)] | None = None


class ActiveAgentPublic(_Body):
    """The agent profile a session's turns go to, until `expires_at` (null: until deleted)."""

    session_id: str
    agent_id: str
    expires_at: datetime | None
    updated_at: datetime


class LeasePublic(_Body):
    """A held lease.

    With the session's agent versions and incarnation (null before the session exists) when it was taken, and
    `turn`: the answer of a turn already committed under the request's Idempotency-Key, if any; `actor_id` and
    `active_agent` of the session, so a turn knows whose session it is and where it goes without another request.
    """

    session_id: str
    owner: str
    locked_at: datetime
    expires_at: datetime
    agent_versions: dict[str, int]
    incarnation: int | None = None
    turn: JsonObject | None = None
    actor_id: str | None = None
    active_agent: ActiveAgentPublic | None = None


class BatchResult(_Body):
    """What a batch did: messages inserted, identical retries skipped, and each updated agent's new version."""

    created_messages: int
    existing_messages: int
    agent_versions: dict[str, int]
    lease_released: bool = False


class Problem(_Body):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
