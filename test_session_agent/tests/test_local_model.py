"""The real local model (llama.cpp in process): a stream its consumer leaves stops generating at its next token."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_abandoned_stream_stops_the_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts the tokens llama.cpp generates after the consumer closed the stream, not the seconds they take.

    On a loaded machine (xdist workers and another llama.cpp process sharing two cores) one token can take
    seconds, so a wall-clock bound would be flaky; the token count is not.
    """
    from test_session_agent.models.local import LocalLlamaModel

    model = LocalLlamaModel(max_tokens=400)
    model.load()
    closed = threading.Event()
    after_close = 0
    finished = threading.Event()
    generate = LocalLlamaModel._generate

    def counting_generate(self: Any, chat: Any, emit: Any, cancelled: Callable[[], bool]) -> None:
        def counting_cancelled() -> bool:
            nonlocal after_close
            if closed.is_set():
                after_close += 1  # llama.cpp asks once per generated chunk
            return cancelled()

        try:
            generate(self, chat, emit, counting_cancelled)
        finally:
            finished.set()

    monkeypatch.setattr(LocalLlamaModel, "_generate", counting_generate)

    async def take_a_few_then_close() -> int:
        deltas = 0
        stream = model.stream([{"role": "user", "content": [{"text": "Count from 1 to 300, one number per line."}]}])
        async for event in stream:
            if "contentBlockDelta" in event:
                deltas += 1
                if deltas == 3:
                    break
        await stream.aclose()  # type: ignore[attr-defined]
        closed.set()
        return deltas

    assert asyncio.run(take_a_few_then_close()) == 3
    # Without the stop, the generation runs on to max_tokens (400 chunks); with it, it ends at the next chunk.
    assert finished.wait(timeout=300)
    assert after_close <= 2
