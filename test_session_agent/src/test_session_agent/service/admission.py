"""Turn admission: at most so many turns in progress per process, a bounded FIFO queue behind them, the rest refused.

Every turn path takes a `Ticket` before any work (`SessionAgents.admitted`, entered by the turn routes before their
first backend call; `SessionAgents.run_turn`; each `/ws` message). `admit` answers at once: a running place, a queue
place, or `TurnRefusedError` (503 full, 429 one actor over its own bound). A queued turn gets the place of the turn
that ends first, in arrival order. Used on the server's event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter, deque
from collections.abc import AsyncIterator

from ..exceptions import TurnRefusedError
from ..observability import AgentMetrics

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER_SECONDS = 60
"""The longest `Retry-After` advised."""


class Ticket:
    """One admitted turn: running now, or queued until `Admission.wait` returns; `Admission.release` ends it."""

    __slots__ = ("actor_id", "claimed", "granted", "released", "running_since")

    def __init__(self, actor_id: str | None, granted: asyncio.Future[None] | None) -> None:
        self.actor_id = actor_id
        self.granted = granted  # None: admitted straight into a running place
        self.running_since: float | None = time.monotonic() if granted is None else None
        self.released = False
        self.claimed = False  # a turn has taken it over: that turn releases it when it ends


class Admission:
    """The admission bounds of one process (not thread-safe: call it from the event loop).

    Args:
        max_running: turns in progress at once (running, or waiting for their session).
        max_queued: turns waiting for a running place, first come first served; beyond: 503.
        max_per_actor: one actor's turns running and queued; beyond: 429 (turns without an actor are not counted).
        metrics: where admissions, refusals, queue waits and the queue length are counted.
    """

    def __init__(self, max_running: int, max_queued: int, max_per_actor: int, metrics: AgentMetrics) -> None:
        self.max_running = max_running
        self.max_queued = max_queued
        self.max_per_actor = max_per_actor
        self.metrics = metrics
        self._running = 0
        self._queue: deque[Ticket] = deque()
        self._per_actor: Counter[str] = Counter()
        self._turn_seconds = 1.0  # moving average of a running place's holding time: the Retry-After estimate
        metrics.turns_queued.set_function(lambda: len(self._queue))

    @property
    def running(self) -> int:
        """Turns holding a running place now."""
        return self._running

    @property
    def queued(self) -> int:
        """Turns waiting for a running place now."""
        return len(self._queue)

    def admit(self, actor_id: str | None) -> Ticket:
        """Admit a turn at once (a running or a queued place), or refuse it.

        Args:
            actor_id: the turn's actor (counted against `max_per_actor`), None: none.

        Returns:
            The turn's ticket: `wait` for it, then `release` it when the turn ends (always, even when it fails).

        Raises:
            TurnRefusedError: 429 when the actor already has `max_per_actor` turns running or queued; 503 when
                `max_running` turns run and `max_queued` wait.
        """
        if actor_id is not None and self._per_actor[actor_id] >= self.max_per_actor:
            self.metrics.turns_refused.labels(reason="actor").inc()
            logger.debug("actor_id=<%s> | turn refused: the actor's turns are at their bound", actor_id)
            raise TurnRefusedError(
                f"this actor already has {self.max_per_actor} turns running or queued; retry when one has ended",
                429,
                self._retry_after(self.max_running),  # about one turn's time
            )
        if self._running < self.max_running and not self._queue:
            self._running += 1
            ticket = Ticket(actor_id, None)
        elif len(self._queue) < self.max_queued:
            ticket = Ticket(actor_id, asyncio.get_running_loop().create_future())
            self._queue.append(ticket)
        else:
            self.metrics.turns_refused.labels(reason="full").inc()
            logger.debug("running=<%d>, queued=<%d> | turn refused: the service is full", self._running, self.queued)
            raise TurnRefusedError(
                "the agent service is at capacity (turns running and queued); retry after Retry-After seconds",
                503,
                self._retry_after(len(self._queue) + 1),
            )
        if actor_id is not None:
            self._per_actor[actor_id] += 1
        return ticket

    @contextlib.asynccontextmanager
    async def admitted(self, actor_id: str | None) -> AsyncIterator[Ticket]:
        """Admit a turn, and wait for its running place, before its route's first backend call (session lookup).

        Args:
            actor_id: the turn's actor (counted against `max_per_actor`), None: none.

        Yields:
            The turn's ticket, for `SessionAgents.run_turn`; released on leaving unless `run_turn` took it over (the
            turn releases it when it ends).

        Raises:
            TurnRefusedError: at once, without work: 503 the process is full, 429 the actor floods.
        """
        ticket = self.admit(actor_id)
        try:
            await self.wait(ticket)
            yield ticket
        finally:
            if not ticket.claimed:
                self.release(ticket)

    async def wait(self, ticket: Ticket) -> None:
        """Return once `ticket` holds a running place (at once when it holds one already)."""
        if ticket.running_since is not None:
            return
        assert ticket.granted is not None
        started = time.monotonic()
        await ticket.granted
        self.metrics.turn_queue_seconds.observe(time.monotonic() - started)

    def release(self, ticket: Ticket) -> None:
        """End `ticket`'s turn (idempotent): its place goes to the oldest queued turn, or it leaves the queue."""
        if ticket.released:
            return
        ticket.released = True
        if ticket.actor_id is not None:
            self._per_actor[ticket.actor_id] -= 1
            if self._per_actor[ticket.actor_id] <= 0:
                del self._per_actor[ticket.actor_id]
        if ticket.running_since is None:  # still queued (its waiter cancelled): it leaves its place
            self._queue.remove(ticket)
            if ticket.granted is not None:
                ticket.granted.cancel()
            return
        held = time.monotonic() - ticket.running_since
        self._turn_seconds += (held - self._turn_seconds) * 0.1
        if self._queue:
            following = self._queue.popleft()
            following.running_since = time.monotonic()
            assert following.granted is not None
            following.granted.set_result(None)
        else:
            self._running -= 1

    def _retry_after(self, ahead: int) -> int:
        """Seconds until `ahead` turns have likely got through the running places (1 to `MAX_RETRY_AFTER_SECONDS`)."""
        seconds = self._turn_seconds * ahead / self.max_running
        return max(1, min(MAX_RETRY_AFTER_SECONDS, math.ceil(seconds)))
