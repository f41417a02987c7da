"""What a lease says of a turn (`lease_verdict`, for every turn), and speculative turns (`Speculation`).

A speculative turn starts its cached agent's model while the lease request is in flight; the agent's
`LeaseGatedModel` holds the model's output until the lease has been judged. Only `confirmed` lets it go on; any
other verdict stops the invocation before anything is streamed or stored, and the turn runs again the usual way.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable
from concurrent.futures import Executor, Future
from typing import Any, Literal

from ..models.gated import LeaseGatedModel
from ..session_manager import PostgreSQLSessionManager
from .cache import CachedAgent, fingerprint
from .lease import Leases
from .request import AGENT_ID, TurnRequest

Verdict = Literal["confirmed", "busy", "not_found", "replay", "routed", "stale"]


def is_current(entry: CachedAgent, session_id: str, lease: dict[str, Any]) -> bool:
    """Whether a cached agent still is what the backend holds: same incarnation and agent version."""
    return manager_is_current(entry.manager, session_id, lease)


def manager_is_current(manager: Any, session_id: str, lease: dict[str, Any]) -> bool:
    """Whether what a session manager last read or wrote still is what the backend holds (its lease says)."""
    return bool(
        manager.incarnation(session_id) == lease.get("incarnation")
        and manager.agent_version(session_id, AGENT_ID) == lease["agent_versions"].get(AGENT_ID)
    )


def lease_verdict(lease: dict[str, Any] | None, entry: CachedAgent | None, request: TurnRequest) -> Verdict:
    """What a lease says of a turn about to run on `entry` (None: no cached agent), first reason first.

    Returns:
        `busy` (no lease: another writer holds it), `not_found` (`require_actor` and the session is another
        actor's), `replay` (a committed turn of the same Idempotency-Key), `stale` (no cached agent, or another
        process wrote the session or it was re-created since it was cached), `routed` (the session has an active
        agent), else `confirmed`.
    """
    if lease is None:
        return "busy"
    if request.require_actor and lease.get("incarnation") is not None and lease.get("actor_id") != request.actor_id:
        return "not_found"
    if lease.get("turn") is not None:
        return "replay"
    if entry is None or not is_current(entry, request.session_id, lease):
        return "stale"
    if lease.get("active_agent") is not None:
        return "routed"
    return "confirmed"


def may_speculate(entry: CachedAgent, request: TurnRequest) -> bool:
    """Whether a turn may start `entry`'s model before its lease is confirmed (the settings allowing it)."""
    return (
        isinstance(entry.agent.model, LeaseGatedModel)
        and isinstance(entry.manager, PostgreSQLSessionManager)
        and not entry.routed
        and entry.fingerprint == fingerprint(request.profile, request.actor_id)
    )


class Mispredicted(Exception):
    """A speculative turn's lease showed it must not go on with its cached agent (raised into the invocation)."""


class Speculation:
    """A turn started on a cached agent while its lease request is in flight (`SESSION_SPECULATIVE_TURNS`).

    Args:
        leases: where the lease is taken (and renewed once confirmed).
        executor: where the lease request is sent from (the turn's own thread runs the model meanwhile).
        entry: the cached agent the turn started on.
        request: the turn.

    Attributes:
        lease: the lease taken (None until then, or when another writer holds it).
        verdict: None until the gate judged the lease.
        failure: the lease request's own exception (e.g. the backend is unreachable), when it failed.
    """

    def __init__(self, leases: Leases, executor: Executor, entry: CachedAgent, request: TurnRequest) -> None:
        self.verdict: Verdict | None = None
        self.failure: BaseException | None = None
        self.lease: dict[str, Any] | None = None
        self._leases = leases
        self._executor = executor
        self._entry = entry
        self._request = request
        self._lease: Future[dict[str, Any] | None] | None = None

    def gate(self) -> Awaitable[None]:
        """Send the lease request (from another thread); the awaitable returned waits for it and judges it.

        The request is sent when the model starts, not before: its Python work would compete for the GIL with the
        agent's own work before the model call, which is on the turn's critical path (the model's time is not).

        It returns when the turn may go on with the cached agent, else raises:
            Mispredicted: any verdict but `confirmed`.
            Exception: the lease request's own failure (also kept in `failure`).
        """
        request = self._request
        take = self._leases.try_take
        self._lease = self._executor.submit(
            contextvars.copy_context().run, take, request.session_id, request.idempotency_key
        )
        return self._judged(self._lease)

    async def _judged(self, request: Future[dict[str, Any] | None]) -> None:
        try:
            lease = await asyncio.wrap_future(request)
        except BaseException as e:
            self.failure = e
            raise
        self.lease = lease
        self.verdict = lease_verdict(lease, self._entry, self._request)
        if self.verdict != "confirmed":
            raise Mispredicted(self.verdict)
        self._leases.renew(self._request.session_id)

    def held(self) -> bool:
        """Wait for the lease request to end, if it was sent; whether it took the lease."""
        if self._lease is None:
            return False
        try:
            return self._lease.result() is not None
        except BaseException:
            return False
