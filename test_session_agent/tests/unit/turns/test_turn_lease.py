"""`turns/lease.py`: a lease retried while another writer holds it, up to the deadline; renewals on one timer;
releases that fail kept for later. No backend: a stand-in that counts attempts."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from strands.types.exceptions import SessionException

from test_session_agent.exceptions import BackendUnavailableError, SessionBusyError
from test_session_agent.turns.lease import LeaseRenewals, Leases


class StandInBackend:
    """Refuses the lease `busy_for` times, then grants it; records renewals and releases."""

    def __init__(self, busy_for: int = 0) -> None:
        self.busy_for = busy_for
        self.attempts: list[float] = []
        self.renewed = threading.Event()
        self.renewals: list[tuple[str, str]] = []
        self.released: list[tuple[str, str]] = []
        self.down = False

    def acquire_lease(
        self, session_id: str, owner: str, ttl_seconds: float, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        self.attempts.append(time.monotonic())
        if len(self.attempts) <= self.busy_for:
            raise SessionBusyError("busy")
        self.renewals.append((session_id, owner))
        self.renewed.set()
        return {"session_id": session_id, "owner": owner, "agent_versions": {}}

    def release_lease(self, session_id: str, owner: str) -> None:
        if self.down:
            raise BackendUnavailableError("down")
        self.released.append((session_id, owner))


def test_lease_is_retried_with_growing_waits() -> None:
    backend = StandInBackend(busy_for=3)
    leases = Leases(backend, ttl=30)
    lease = leases.take("s", deadline=time.monotonic() + 5)
    assert lease["owner"] == leases.owner
    waits = [b - a for a, b in zip(backend.attempts, backend.attempts[1:], strict=False)]
    assert len(waits) == 3
    assert waits[0] >= 0.005 and waits[1] >= 0.01 and waits[2] >= 0.02


def test_lease_gives_up_at_the_deadline() -> None:
    backend = StandInBackend(busy_for=10**6)
    leases = Leases(backend, ttl=30)
    started = time.monotonic()
    with pytest.raises(SessionBusyError):
        leases.take("s", deadline=started + 0.3)
    assert time.monotonic() - started >= 0.3
    assert len(backend.attempts) > 3


def test_a_passed_deadline_still_tries_once() -> None:
    leases = Leases(StandInBackend(), ttl=30)
    assert leases.take("s", deadline=time.monotonic() - 1)["owner"] == leases.owner


def test_try_take_reads_busy_as_none() -> None:
    leases = Leases(StandInBackend(busy_for=1), ttl=30)
    assert leases.try_take("s") is None
    assert leases.try_take("s") is not None


def test_one_timer_renews_every_held_lease_until_stopped() -> None:
    backend = StandInBackend()
    renewals = LeaseRenewals(backend, ttl=0.03)  # renewed every 10 ms
    try:
        renewals.start("a", "me")
        renewals.start("b", "me")
        deadline = time.monotonic() + 10
        while {"a", "b"} - {sid for sid, _ in backend.renewals} and time.monotonic() < deadline:
            backend.renewed.wait(0.05)
        assert {("a", "me"), ("b", "me")} <= set(backend.renewals)
        assert [t.name for t in threading.enumerate()].count("lease-renewal") == 1
        renewals.stop("a", "me")
        count = len([r for r in backend.renewals if r[0] == "a"])
        # After `stop` returns no renewal of `a` is in flight or scheduled; `b` goes on.
        seen_b = len([r for r in backend.renewals if r[0] == "b"])
        while len([r for r in backend.renewals if r[0] == "b"]) < seen_b + 3 and time.monotonic() < deadline:
            backend.renewed.clear()
            backend.renewed.wait(0.05)
        assert len([r for r in backend.renewals if r[0] == "a"]) == count
        assert renewals.renewing("b", "me") and not renewals.renewing("a", "me")
    finally:
        renewals.close()


def test_a_failed_release_is_kept_until_the_backend_answers() -> None:
    backend = StandInBackend()
    leases = Leases(backend, ttl=30)
    backend.down = True
    leases.renew("s")
    leases.release("s")
    assert leases.has_unreleased() and not leases.renewals.renewing("s", leases.owner)
    assert leases.release_pending() == 1
    backend.down = False
    assert leases.release_pending() == 0
    assert backend.released == [("s", leases.owner)] and not leases.has_unreleased()
    leases.close()


def test_a_deferred_release_never_ends_a_lease_taken_again() -> None:
    """A release that failed while the backend was down is dropped when a turn of this process takes the lease
    again (re-entrant): the deferred-release loop must not end the new turn's lease (failover race of issue 28)."""
    backend = StandInBackend()
    leases = Leases(backend, ttl=30)
    backend.down = True
    leases.release("s")
    assert leases.has_unreleased()
    backend.down = False
    assert leases.try_take("s") is not None  # the next turn of the session
    assert not leases.has_unreleased()
    assert leases.release_pending() == 0
    assert backend.released == []
    leases.close()


def test_a_take_waits_for_a_deferred_release_in_flight() -> None:
    """A deferred release already sent when the lease is taken again completes first: the take then gets a fresh
    lease, never one the release ends after it was granted."""
    backend = StandInBackend()
    leases = Leases(backend, ttl=30)
    backend.down = True
    leases.release("s")
    backend.down = False
    events: list[str] = []
    sending, proceed = threading.Event(), threading.Event()
    release_lease, acquire_lease = backend.release_lease, backend.acquire_lease

    def slow_release(session_id: str, owner: str) -> None:
        sending.set()
        assert proceed.wait(10)
        release_lease(session_id, owner)
        events.append("released")

    def recorded_acquire(*args: Any) -> dict[str, Any]:
        events.append("acquired")
        return acquire_lease(*args)

    backend.release_lease = slow_release  # type: ignore[method-assign]
    backend.acquire_lease = recorded_acquire  # type: ignore[method-assign,assignment]
    releasing = threading.Thread(target=leases.release_pending)
    releasing.start()
    assert sending.wait(10)
    taking = threading.Thread(target=leases.take, args=("s", time.monotonic() + 10))
    taking.start()
    taking.join(0.2)  # the take is held while the release is in flight (longer would only wait longer)
    proceed.set()
    releasing.join(10)
    taking.join(10)
    assert events == ["released", "acquired"]
    leases.close()


def test_errors_are_session_exceptions() -> None:
    assert issubclass(BackendUnavailableError, SessionException)
