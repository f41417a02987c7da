"""Turn admission (`service/admission.py`) on its own: places, FIFO hand-over, refusals and their Retry-After."""

from __future__ import annotations

import asyncio

import pytest

from test_session_agent.exceptions import TurnRefusedError
from test_session_agent.observability import AgentMetrics
from test_session_agent.service.admission import Admission


def _refused(metrics: AgentMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("agent_turns_refused_total", {"reason": reason})
    return value or 0.0


def test_queued_turns_get_places_first_come_first_served() -> None:
    async def scenario() -> list[str]:
        admission = Admission(max_running=1, max_queued=3, max_per_actor=10, metrics=AgentMetrics())
        first = admission.admit("a")
        order: list[str] = []

        async def queued(name: str) -> None:
            ticket = admission.admit(name)
            await admission.wait(ticket)
            order.append(name)
            admission.release(ticket)

        tasks = [asyncio.create_task(queued(name)) for name in ("b", "c", "d")]
        await asyncio.sleep(0)  # the three are queued, in this order
        assert (admission.running, admission.queued) == (1, 3)
        admission.release(first)
        await asyncio.gather(*tasks)
        assert (admission.running, admission.queued) == (0, 0)
        return order

    assert asyncio.run(scenario()) == ["b", "c", "d"]


def test_full_process_refuses_with_503_and_actor_flood_with_429() -> None:
    async def scenario() -> None:
        metrics = AgentMetrics()
        admission = Admission(max_running=1, max_queued=1, max_per_actor=2, metrics=metrics)
        admission.admit("a")
        admission.admit("a")  # queued
        with pytest.raises(TurnRefusedError) as flood:
            admission.admit("a")
        assert flood.value.status == 429 and flood.value.retry_after >= 1
        with pytest.raises(TurnRefusedError) as full:
            admission.admit("b")
        assert full.value.status == 503 and full.value.retry_after >= 1
        assert (_refused(metrics, "actor"), _refused(metrics, "full")) == (1.0, 1.0)
        assert admission.queued == 1

    asyncio.run(scenario())


def test_a_queued_turn_that_leaves_frees_its_place_and_its_actor_count() -> None:
    async def scenario() -> None:
        admission = Admission(max_running=1, max_queued=1, max_per_actor=1, metrics=AgentMetrics())
        running = admission.admit("a")
        queued = admission.admit("b")
        admission.release(queued)
        admission.release(queued)  # idempotent
        assert admission.queued == 0
        again = admission.admit("b")  # b's count went back to 0, and the queue place is free
        admission.release(running)
        await admission.wait(again)
        assert (admission.running, admission.queued) == (1, 0)
        admission.release(again)
        assert admission.running == 0

    asyncio.run(scenario())
