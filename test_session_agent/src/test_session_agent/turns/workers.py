"""Where a turn's work runs: worker threads, each with one event loop of its own for the turns it runs."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from strands import Agent
from strands.types.exceptions import MaxTokensReachedException

from .._messages import max_tokens_result
from .request import TextCallback

logger = logging.getLogger(__name__)

T = TypeVar("T")

_thread = threading.local()


def run_on_thread_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to its end on the calling worker thread's event loop (made on first use, kept for the next)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_thread, "loop", None)
    if loop is None or loop.is_closed():
        loop = _thread.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop.run_until_complete(coroutine)


class TurnWorkers:
    """A pool of worker threads for turns (the server's event loop never blocks on a turn).

    Args:
        max_workers: threads available to run turns at once.
    """

    def __init__(self, max_workers: int) -> None:
        self._loops: list[asyncio.AbstractEventLoop] = []
        self._loops_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="agent-turn", initializer=self._start_loop
        )

    def _start_loop(self) -> None:
        loop = _thread.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        with self._loops_lock:
            self._loops.append(loop)

    async def run(self, work: Callable[[], T]) -> T:
        """Run `work` on a worker thread, in the caller's context (its log fields), and return what it returns."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, contextvars.copy_context().run, work)

    def close(self) -> None:
        """Wait for running turns, then stop the threads and close their event loops."""
        self._executor.shutdown(wait=True)
        with self._loops_lock:
            for loop in self._loops:
                loop.close()
            self._loops.clear()


async def invoke(
    agent: Agent, prompt: str, on_text: TextCallback | None, invocation_state: dict[str, Any] | None = None
) -> Any:
    """Run one invocation of `agent` on `prompt`, passing each text delta to `on_text`; returns Strands' result.

    A reply that reaches the model's `max_tokens` is a result (`stop_reason` "max_tokens", the partial reply), as
    Strands' guidance for `MaxTokensReachedException` has it; the session manager stores it as such.
    """
    result = None
    try:
        async for event in agent.stream_async(prompt, invocation_state=invocation_state):
            if on_text is not None and "data" in event and isinstance(event["data"], str):
                on_text(event["data"])
            if "result" in event:
                result = event["result"]
    except MaxTokensReachedException:
        logger.debug("agent_id=<%s> | reply reached max_tokens, answered as produced", agent.agent_id)
        result = max_tokens_result(agent)
    if agent.memory_manager is not None:
        # Extraction runs as tasks of the invocation: let them finish before the turn ends.
        await agent.memory_manager.flush()
    return result
