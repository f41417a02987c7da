"""`turns/speculation.py`: what a lease says of a turn, the one verdict speculative and lease-first turns share."""

from __future__ import annotations

from typing import Any, cast

import pytest

from test_session_agent.service.session_managers import ServiceSessionManager
from test_session_agent.turns.cache import CachedAgent, fingerprint
from test_session_agent.turns.request import TurnRequest
from test_session_agent.turns.speculation import Verdict, lease_verdict


class SeenManager:
    """What a cached agent's session manager last saw of the session."""

    def __init__(self, incarnation: int | None, version: int | None) -> None:
        self._incarnation, self._version = incarnation, version

    def incarnation(self, session_id: str) -> int | None:
        return self._incarnation

    def agent_version(self, session_id: str, agent_id: str) -> int | None:
        return self._version


def entry(incarnation: int | None = 7, version: int | None = 3) -> CachedAgent:
    manager = cast(ServiceSessionManager, SeenManager(incarnation, version))
    return CachedAgent(agent=cast(Any, None), manager=manager, fingerprint=fingerprint(None, "ann"))


def lease(**fields: Any) -> dict[str, Any]:
    return {"incarnation": 7, "actor_id": "ann", "agent_versions": {"default": 3}, "turn": None} | fields


REQUEST = TurnRequest("s", "hi", actor_id="ann", require_actor=True)


@pytest.mark.parametrize(
    ("the_lease", "cached", "request_", "verdict"),
    [
        (None, entry(), REQUEST, "busy"),
        (lease(actor_id="bob"), entry(), REQUEST, "not_found"),
        (lease(actor_id="bob", turn={"response": "x"}), entry(), REQUEST, "not_found"),  # before a replay
        (lease(actor_id="bob"), entry(), TurnRequest("s", "hi", actor_id="ann"), "confirmed"),  # not required
        (lease(incarnation=None, actor_id=None, agent_versions={}), None, REQUEST, "stale"),  # a new session
        (lease(turn={"response": "x"}), entry(), REQUEST, "replay"),
        (lease(), None, REQUEST, "stale"),
        (lease(agent_versions={"default": 4}), entry(), REQUEST, "stale"),  # another process wrote it
        (lease(incarnation=8), entry(), REQUEST, "stale"),  # deleted and created again
        (lease(active_agent={"agent_id": "specialist"}), entry(), REQUEST, "routed"),
        (lease(), entry(), REQUEST, "confirmed"),
    ],
)
def test_lease_verdict(
    the_lease: dict[str, Any] | None, cached: CachedAgent | None, request_: TurnRequest, verdict: Verdict
) -> None:
    assert lease_verdict(the_lease, cached, request_) == verdict


def test_turn_request_is_frozen() -> None:
    with pytest.raises(AttributeError):
        REQUEST.prompt = "changed"  # type: ignore[misc]
