"""Session leases of the agent service: take (retried until a deadline), renew on one shared timer, release.

A turn (and a `/ws` connection) holds its session's lease while it writes: `Leases.take`, then `renew`, then either
the turn's commit ends the lease (`stop_renewing` first) or `release`. A release that meets a dead backend is kept
and retried by `release_pending`, so other processes need not wait out the TTL.
"""

from __future__ import annotations

import heapq
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from strands.types.exceptions import SessionException
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential
from tenacity.wait import wait_base

from ..exceptions import SessionBusyError

logger = logging.getLogger(__name__)

# Waits between attempts to take a busy session's lease: 5 ms, doubling, at most 250 ms.
LEASE_FIRST_WAIT = 0.005
LEASE_MAX_WAIT = 0.25


class LeaseBackend(Protocol):
    """What leases need of the backend (`ServiceBackend`)."""

    def acquire_lease(
        self, session_id: str, owner: str, ttl_seconds: float, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Take or renew the lease; raises `SessionBusyError` when another owner holds it."""
        ...

    def release_lease(self, session_id: str, owner: str) -> None:
        """Release the lease if `owner` holds it."""
        ...


def process_owner() -> str:
    """A lease owner for this process: host, pid and a random part.

    The random part keeps a restarted process (same host name and pid in a container) from inheriting the leases of
    its predecessor.
    """
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class LeaseRenewals:
    """Renews held leases every third of their TTL, all on one timer thread (a turn may outlast one TTL).

    Args:
        backend: where leases are renewed.
        ttl: lease lifetime in seconds.
    """

    def __init__(self, backend: LeaseBackend, ttl: float) -> None:
        self._backend = backend
        self._ttl = ttl
        self._due: list[tuple[float, str, str]] = []  # heap of (monotonic due time, session_id, owner)
        self._held: set[tuple[str, str]] = set()
        self._renewing: tuple[str, str] | None = None
        self._changed = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self, session_id: str, owner: str) -> None:
        """Renew `owner`'s lease of the session from a third of the TTL from now, until `stop`."""
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lease-renewal", daemon=True)
                self._thread.start()
            self._held.add((session_id, owner))
            heapq.heappush(self._due, (time.monotonic() + self._ttl / 3, session_id, owner))
            self._changed.notify()

    def stop(self, session_id: str, owner: str) -> None:
        """Stop renewing; waits for a renewal of this lease in flight, so none lands after the lease is released."""
        with self._changed:
            self._held.discard((session_id, owner))
            while self._renewing == (session_id, owner):
                self._changed.wait()

    def renewing(self, session_id: str, owner: str) -> bool:
        """Whether the lease is being renewed now."""
        with self._changed:
            return (session_id, owner) in self._held

    def close(self) -> None:
        """Stop the timer thread (leases still held are no longer renewed)."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        if self._thread is not None:
            self._thread.join()

    def _next(self) -> tuple[str, str] | None:
        """Wait for the next renewal due (None: closed); marks it in flight. Called with the condition held."""
        while not self._closed:
            while self._due and self._due[0][1:] not in self._held:
                heapq.heappop(self._due)  # stopped since it was scheduled
            if not self._due:
                self._changed.wait()
                continue
            wait = self._due[0][0] - time.monotonic()
            if wait > 0:
                self._changed.wait(wait)
                continue
            _, session_id, owner = heapq.heappop(self._due)
            self._renewing = (session_id, owner)
            return self._renewing
        return None

    def _run(self) -> None:
        while True:
            with self._changed:
                key = self._next()
            if key is None:
                return
            session_id, owner = key
            try:
                self._backend.acquire_lease(session_id, owner, self._ttl)
            except SessionException:
                # Lost or unreachable: the turn's fenced write will be refused, so nothing is half-written.
                logger.warning("session_id=<%s> | lease renewal failed", session_id)
            with self._changed:
                self._renewing = None
                if key in self._held:
                    heapq.heappush(self._due, (time.monotonic() + self._ttl / 3, session_id, owner))
                self._changed.notify_all()


class Leases:
    """The leases this process takes: one owner for every turn of the process, renewals, pending releases.

    A lease is re-entrant for its owner, so a lease this process could not release (the backend died mid-turn) never
    blocks its own next turn; turns of one session within the process are serialized by the session's lock.

    Args:
        backend: where leases are taken and released (`ServiceBackend`).
        ttl: lease lifetime in seconds (`SESSION_LEASE_TTL_SECONDS`).
        owner: the owner of this process's turn leases (default: `process_owner()`).
    """

    def __init__(self, backend: LeaseBackend, ttl: float, owner: str | None = None) -> None:
        self.backend = backend
        self.ttl = ttl
        self.owner = owner or process_owner()
        self.renewals = LeaseRenewals(backend, ttl)
        self._unreleased: set[tuple[str, str]] = set()
        # Guards `_unreleased`, and is held across each deferred release: a lease taken again (re-entrant: the same
        # owner) leaves the pending set under it first, so a late release can never end the new turn's lease.
        self._unreleased_lock = threading.Lock()

    def close(self) -> None:
        """Stop renewing."""
        self.renewals.close()

    def try_take(self, session_id: str, idempotency_key: str | None = None) -> dict[str, Any] | None:
        """One attempt at the session's lease for this process (blocking).

        Returns:
            The lease, or None when another writer holds it.

        Raises:
            SessionException: the backend refused or is unreachable.
        """
        try:
            return self._acquire(session_id, self.owner, idempotency_key)
        except SessionBusyError:
            return None

    def take(
        self, session_id: str, deadline: float, idempotency_key: str | None = None, owner: str | None = None
    ) -> dict[str, Any]:
        """Take the session's lease, retrying while another writer holds it, until `deadline` (blocking).

        Args:
            session_id: the session.
            deadline: when to give up (monotonic seconds); one attempt is made even when it has passed.
            idempotency_key: the turn's Idempotency-Key (the lease then carries that key's stored answer).
            owner: the lease owner; default: this process's (`owner`).

        Returns:
            The lease (see `ServiceBackend.acquire_lease`).

        Raises:
            SessionBusyError: another writer still held it at the deadline.
            SessionException: the backend refused or is unreachable.
        """
        retrying = Retrying(
            retry=retry_if_exception_type(SessionBusyError),
            wait=_until(deadline, wait_exponential(multiplier=LEASE_FIRST_WAIT, max=LEASE_MAX_WAIT)),
            stop=lambda _: time.monotonic() >= deadline,
            reraise=True,
        )
        return retrying(self._acquire, session_id, owner or self.owner, idempotency_key)

    def _acquire(self, session_id: str, owner: str, idempotency_key: str | None) -> dict[str, Any]:
        """One attempt; the lease's deferred release (if any) is dropped first, or waited for when in flight."""
        with self._unreleased_lock:
            self._unreleased.discard((session_id, owner))
        return self.backend.acquire_lease(session_id, owner, self.ttl, idempotency_key)

    def renew(self, session_id: str, owner: str | None = None) -> None:
        """Keep renewing the held lease until `stop_renewing` or `release`."""
        self.renewals.start(session_id, owner or self.owner)

    def stop_renewing(self, session_id: str, owner: str | None = None) -> None:
        """Stop renewing the lease (waits for a renewal in flight)."""
        self.renewals.stop(session_id, owner or self.owner)

    def release(self, session_id: str, owner: str | None = None) -> None:
        """Stop renewing and release the lease (blocking); remembered for `release_pending` when that fails."""
        owner = owner or self.owner
        self.renewals.stop(session_id, owner)
        try:
            self.backend.release_lease(session_id, owner)
        except SessionException:
            logger.warning("session_id=<%s> | lease release failed; released when the backend answers", session_id)
            with self._unreleased_lock:
                self._unreleased.add((session_id, owner))

    def release_pending(self) -> int:
        """Release the leases whose release failed earlier (blocking; call when the backend may be back).

        Returns:
            How many are still pending (the backend still does not answer).
        """
        with self._unreleased_lock:
            pending = list(self._unreleased)
        for lease in pending:
            # Under the lock, and only while still pending: a turn that took the lease again meanwhile owns it now.
            with self._unreleased_lock:
                if lease not in self._unreleased:
                    continue
                try:
                    self.backend.release_lease(*lease)
                except SessionException:
                    continue
                self._unreleased.discard(lease)
        with self._unreleased_lock:
            return len(self._unreleased)

    def has_unreleased(self) -> bool:
        """Whether some lease of this process could not be released yet."""
        with self._unreleased_lock:
            return bool(self._unreleased)


def _until(deadline: float, wait: wait_base) -> Callable[[RetryCallState], float]:
    """`wait`, cut so the next attempt happens no later than `deadline` (monotonic seconds)."""
    return lambda state: max(0.0, min(wait(state), deadline - time.monotonic()))
