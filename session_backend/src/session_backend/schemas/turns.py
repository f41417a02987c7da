"""Bodies of a session's turns: the batch a turn commits, its lease, its record, and the session's active agent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StrictBool, model_validator

from .common import MAX_MESSAGE_ID, MAX_TTL_SECONDS, Body, Identifier, JsonObject, Token
from .sessions import AgentBody, MessageBody


class CreateMessageOp(Body):
    """Append a message (idempotent for identical content, like `POST .../messages`)."""

    op: Literal["create_message"]
    agent_id: Identifier
    message: MessageBody


class UpdateMessageOp(Body):
    """Replace a message (like `PUT .../messages/{message_id}`).

    The memories extracted from it are deleted with it unless `forget_memories` is false.
    """

    op: Literal["update_message"]
    agent_id: Identifier
    message: MessageBody
    forget_memories: bool = True


class UpdateAgentOp(Body):
    """Replace an agent's state (like `PUT .../agents/{agent_id}`); `if_version` makes it conditional."""

    op: Literal["update_agent"]
    agent: AgentBody
    if_version: Annotated[int, Field(ge=1)] | None = None


class ContextWindowEntry(Body):
    """One message of a context window: a stored message by `message_id`, or a `message` of its own.

    A message of its own is a summary, or a stored message its conversation manager changed (then `message_id` names
    the message it replaces).
    """

    message_id: Annotated[int, Field(ge=0, le=MAX_MESSAGE_ID)] | None = None
    message: JsonObject | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ContextWindowEntry:
        if self.message_id is None and self.message is None:
            raise ValueError("a context window entry needs a message_id or a message")
        return self


class ContextWindow(Body):
    """The agent's context window after its conversation manager's reductions (strands-agents #4270, #4027).

    Attributes:
        upto: the last message_id stored when the window was taken: messages after it follow the window on restore.
        entries: the window in order.
    """

    upto: Annotated[int, Field(ge=-1, le=MAX_MESSAGE_ID)]
    entries: list[ContextWindowEntry]


class SetContextWindowOp(Body):
    """Record the agent's context window with the turn (restored by `GET .../agents/{agent_id}/context-window`).

    A null `window` clears it: the agent's context is the log's tail again, restored as Strands does.
    """

    op: Literal["set_context_window"]
    agent_id: Identifier
    window: ContextWindow | None


BatchOperation = Annotated[
    CreateMessageOp | UpdateMessageOp | UpdateAgentOp | SetContextWindowOp, Field(discriminator="op")
]


class TurnRecord(Body):
    """The turn a batch commits: its id, the client's Idempotency-Key (if any) and the answer given for it."""

    turn_id: Token
    idempotency_key: Token | None = None
    result: JsonObject = Field(default_factory=dict)


class TurnPublic(Body):
    """A turn's record: `committed` by its batch, or `aborted` when its writer gave it up before the batch landed."""

    turn_id: str
    idempotency_key: str | None
    status: Literal["committed", "aborted"]
    result: JsonObject | None
    created_at: datetime


class BatchRequest(Body):
    """Writes of one agent turn, applied in order in one transaction: all of them or none.

    With `lease_owner`, the batch is refused (409) unless that owner holds the session's live lease; with
    `incarnation`, it is refused (412) when the session was deleted and re-created since the writer read it; with
    `turn`, the turn is recorded as committed (409 when it was given up, or its Idempotency-Key already committed);
    with `release_lease` (needs `lease_owner`), that owner's lease ends with the commit, saving the writer the
    release request.
    """

    operations: Annotated[list[BatchOperation], Field(min_length=1, max_length=1000)]
    lease_owner: Token | None = None
    incarnation: int | None = None
    turn: TurnRecord | None = None
    release_lease: StrictBool = False

    @model_validator(mode="after")
    def _release_needs_owner(self) -> BatchRequest:
        if self.release_lease and self.lease_owner is None:
            raise ValueError("release_lease needs lease_owner")
        return self


class LeaseRequest(Body):
    """Take or renew a session's lease: `owner` is any token unique to the writer, `ttl_seconds` its lifetime."""

    owner: Token
    ttl_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    idempotency_key: Token | None = None


class ActiveAgentSet(Body):
    """Route a session's turns to an agent profile, for `ttl_seconds` (absent: until deleted)."""

    agent_id: Identifier
    ttl_seconds: Annotated[float, Field(gt=0, le=MAX_TTL_SECONDS)] | None = None


class ActiveAgentPublic(Body):
    """The agent profile a session's turns go to, until `expires_at` (null: until deleted)."""

    session_id: str
    agent_id: str
    expires_at: datetime | None
    updated_at: datetime


class LeasePublic(Body):
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


class BatchResult(Body):
    """What a batch did: messages inserted, identical retries skipped, each updated agent's new version.

    `lease_ended`: whether the batch's `release_lease` ended the writer's lease with its commit.
    """

    created_messages: int
    existing_messages: int
    agent_versions: dict[str, int]
    lease_ended: bool = False
