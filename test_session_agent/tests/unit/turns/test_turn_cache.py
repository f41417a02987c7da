"""`turns/cache.py`: agents taken out for a turn and put back, bounded, expiring when idle; fingerprints."""

from __future__ import annotations

import time
from typing import Any, cast

from test_session_agent.profiles import AgentProfile
from test_session_agent.service.session_managers import ServiceSessionManager
from test_session_agent.turns.cache import AgentCache, CachedAgent, fingerprint


def entry(name: str) -> CachedAgent:
    return CachedAgent(agent=cast(Any, name), manager=cast(ServiceSessionManager, None))


def test_a_taken_agent_is_gone_until_put_back() -> None:
    cache = AgentCache(size=4, idle_seconds=60)
    cache.put("s", entry("a"))
    taken = cache.take("s")
    assert taken is not None and cast(Any, taken.agent) == "a"
    assert cache.take("s") is None and len(cache) == 0
    cache.put("s", taken)
    assert len(cache) == 1


def test_least_recently_put_goes_first_when_full() -> None:
    cache = AgentCache(size=2, idle_seconds=60)
    cache.put("a", entry("a"))
    cache.put("b", entry("b"))
    cache.put("a", entry("a"))  # used again: now the youngest
    cache.put("c", entry("c"))
    assert cache.take("b") is None
    assert cache.take("a") is not None and cache.take("c") is not None


def test_idle_agents_expire() -> None:
    cache = AgentCache(size=4, idle_seconds=0.05)
    cache.put("s", entry("a"))
    deadline = time.monotonic() + 10
    while len(cache) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(cache) == 0 and cache.take("s") is None


def test_drop() -> None:
    cache = AgentCache(size=4, idle_seconds=60)
    cache.put("s", entry("a"))
    cache.drop("s")
    cache.drop("never-there")
    assert len(cache) == 0


def test_fingerprint_names_profile_version_and_actor() -> None:
    profile = AgentProfile(agent_id="helper", name="Helper", updated_at="2026-01-01T00:00:00Z")
    assert fingerprint(None, "ann") == (None, None, "ann")
    assert fingerprint(profile, "ann") == ("helper", "2026-01-01T00:00:00Z", "ann")
    assert fingerprint(profile, "ann") != fingerprint(profile, "bob")
