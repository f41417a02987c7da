"""`LeaseGatedModel`: an agent's model whose output can be held until the turn's lease is confirmed.

A turn on a cached agent starts the model while its lease request is still in flight (speculative start, see
`SessionAgents`): the model computes its first event meanwhile, and Strands sees nothing of it (no text streamed, no
tool run, no message added) until the gate has opened. A gate that refuses stops the model and raises into the
agent's invocation, which then stores nothing. The lease round trip is thereby hidden behind the model's time to
first token instead of added to it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from typing import Any, TypeVar, cast

from strands.models.model import Model
from strands.types.content import Messages
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolSpec

Gate = Callable[[], Awaitable[None]]
"""Called as the model starts: sends whatever request decides the turn, then returns what waits for the decision (it
returns when the turn may go on with this agent, or raises when it may not)."""

T = TypeVar("T")


class LeaseGatedModel(Model):
    """Wraps `inner` (the model doing the work); everything but the gating is `inner`'s.

    Args:
        inner: the Strands model (shared by many agents: the wrapper holds only this agent's gate).

    Attributes:
        gate: set by the turn before invoking the agent; consumed by the next model call, which starts `inner` at
            once but passes on its first event only once `gate()` has returned. None: calls pass straight through.
        on_start: set by the turn; called (on the agent's thread) as each model call starts: after `inner` was
            started and, with a gate, once the gate has sent its request. None: nobody is told.
    """

    def __init__(self, inner: Model) -> None:
        self.inner = inner
        self.gate: Gate | None = None
        self.on_start: Callable[[], None] | None = None

    def __getattr__(self, name: str) -> Any:
        """Provider-specific attributes (e.g. `config`) are the inner model's."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def stateful(self) -> bool:
        """The inner model's."""
        return self.inner.stateful

    @property
    def context_window_limit(self) -> int | None:
        """The inner model's."""
        return self.inner.context_window_limit

    def update_config(self, **model_config: Any) -> None:
        """Update the inner model's configuration."""
        self.inner.update_config(**model_config)

    def get_config(self) -> Any:
        """The inner model's configuration."""
        return self.inner.get_config()

    async def count_tokens(self, *args: Any, **kwargs: Any) -> int:
        """The inner model's estimate."""
        return await self.inner.count_tokens(*args, **kwargs)

    def structured_output(self, *args: Any, **kwargs: Any) -> AsyncGenerator[dict[str, Any], None]:
        """The inner model's structured output, held behind the gate like `stream`."""
        return self._gated(self.inner.structured_output(*args, **kwargs))

    def stream(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None = None,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncIterable[StreamEvent]:
        """The inner model's stream; its first event waits for the gate when one is set."""
        return self._gated(self.inner.stream(messages, tool_specs, system_prompt, **kwargs))

    async def _gated(self, events: AsyncIterable[T]) -> AsyncGenerator[T, None]:
        gate, self.gate = self.gate, None
        if gate is None:
            if self.on_start is not None:
                self.on_start()
            async for event in events:
                yield event
            return
        # The model runs on (a task of its own, its events queued) while the gate waits; both must succeed to go on.
        queue: asyncio.Queue[tuple[T | None, BaseException | None, bool]] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for event in events:
                    queue.put_nowait((event, None, False))
            except Exception as e:
                queue.put_nowait((None, e, True))
            else:
                queue.put_nowait((None, None, True))

        task = asyncio.ensure_future(pump())
        try:
            await asyncio.sleep(0)  # the model starts first
            verdict = gate()  # then the gate sends its request
            if self.on_start is not None:
                self.on_start()
            await verdict
            while True:
                item, error, ended = await queue.get()
                if error is not None:
                    raise error
                if ended:
                    return
                yield cast(T, item)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
