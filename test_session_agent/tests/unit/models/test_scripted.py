"""The scripted model's latency is what it was configured to be: its first text delta never comes early."""

from __future__ import annotations

import asyncio
import time

from test_session_agent.models.scripted import ScriptedModel


def test_first_text_delta_is_never_early() -> None:
    model = ScriptedModel(first_token_delay=0.03, token_delay=0.0)

    async def first_delta_after() -> float:
        started = time.perf_counter()
        async for event in model.stream([{"role": "user", "content": [{"text": "hello there"}]}]):
            if "contentBlockDelta" in event:
                return time.perf_counter() - started
        raise AssertionError("no text delta")

    assert all(asyncio.run(first_delta_after()) >= 0.03 for _ in range(5))
