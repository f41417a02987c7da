"""`LeaseGatedModel`: an agent's model whose first output can wait for the turn's lease.

A turn on a cached agent starts the model while its lease request is still in flight (a speculative turn, see
`turns/speculation.py`): the model computes its first event meanwhile, and Strands sees nothing of it (no text
streamed, no tool run, no message added) until the gate has opened. A gate that refuses stops the model and raises
into the agent's invocation, which then stores nothing. The lease round trip is thereby hidden behind the model's
time to first token instead of added to it.

The turn passes its gate explicitly, in the invocation state (`ModelStart`, under `MODEL_START_KEY`): the model holds
no per-turn fields.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from strands.models.model import Model
from strands.types.content import Messages
from strands.types.exceptions import ContextWindowOverflowException, ModelThrottledException
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolSpec

from ..exceptions import ModelFailedError

Gate = Callable[[], Awaitable[None]]
"""Called as the model starts: sends whatever request decides the turn, then returns what waits for the decision (it
returns when the turn may go on with this agent, or raises when it may not)."""

MODEL_START_KEY = "model_start"
"""Key of a turn's `ModelStart` in the invocation state Strands passes to every model call."""

T = TypeVar("T")


@dataclass
class ModelStart:
    """What the model calls of one turn are told (one per turn, in the invocation state under `MODEL_START_KEY`).

    Attributes:
        gate: held by the turn's first model call, which starts the inner model at once but passes on its first event
            only once `gate()` has returned; consumed by that call. None: calls pass straight through.
        on_start: called (on the turn's thread) as each model call starts: after the inner model was started and,
            with a gate, once the gate has sent its request. None: nobody is told.
    """

    gate: Gate | None = None
    on_start: Callable[[], None] | None = None

    def take_gate(self) -> Gate | None:
        """The gate, once: later calls of the turn are not gated."""
        gate, self.gate = self.gate, None
        return gate


class _Pump(Generic[T]):
    """Runs an async stream as a task of its own, its events queued, so it goes on while nobody reads it yet.

    Iterate it once to read the events in order (an error of the stream is raised there); `close` stops it.
    """

    def __init__(self, events: AsyncIterable[T]) -> None:
        self._events = events
        self._queue: asyncio.Queue[tuple[T | None, BaseException | None, bool]] = asyncio.Queue()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            async for event in self._events:
                self._queue.put_nowait((event, None, False))
        except Exception as e:
            self._queue.put_nowait((None, e, True))
        else:
            self._queue.put_nowait((None, None, True))

    async def __aiter__(self) -> AsyncIterator[T]:
        while True:
            item, error, ended = await self._queue.get()
            if error is not None:
                raise error
            if ended:
                return
            yield cast(T, item)

    async def close(self) -> None:
        """Stop the stream (cancelled, then closed) unless it has ended."""
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        close = getattr(self._events, "aclose", None)
        if close is not None:
            await close()


class LeaseGatedModel(Model):
    """Wraps `inner` (the model doing the work); all but the gating, and the naming of its failures, is `inner`'s.

    A failure of `inner`'s stream is raised as `ModelFailedError` from the provider's error (the turn answers 502
    without provider internals), except Strands' own model exceptions, which Strands acts on (throttling is retried,
    a context window overflow reduces the conversation).

    Args:
        inner: the Strands model (shared by many agents: the wrapper holds no state of its own).
    """

    def __init__(self, inner: Model) -> None:
        self.inner = inner

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
        """The inner model's structured output (not gated: Strands passes it no invocation state)."""
        return self.inner.structured_output(*args, **kwargs)

    def stream(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None = None,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncIterable[StreamEvent]:
        """The inner model's stream, its first event held behind the turn's gate when it has one."""
        state = kwargs.get("invocation_state") or {}
        start = state.get(MODEL_START_KEY)

        def events() -> AsyncIterable[StreamEvent]:
            return _named_failures(self.inner.stream(messages, tool_specs, system_prompt, **kwargs))

        if not isinstance(start, ModelStart):
            return events()
        return _gated(events, start)


async def _named_failures(events: AsyncIterable[T]) -> AsyncGenerator[T, None]:
    """`events`, an error of theirs raised as `ModelFailedError` (Strands' own model exceptions pass unchanged)."""
    iterator = aiter(events)
    while True:
        try:
            event = await anext(iterator)
        except StopAsyncIteration:
            return
        except (ContextWindowOverflowException, ModelThrottledException, ModelFailedError):
            raise
        except Exception as e:
            raise ModelFailedError() from e
        yield event


async def _gated(start: Callable[[], AsyncIterable[T]], turn: ModelStart) -> AsyncGenerator[T, None]:
    """`start()`'s events, the first held until the turn's gate (if it still has one) has returned."""
    gate = turn.take_gate()
    if gate is None:
        if turn.on_start is not None:
            turn.on_start()
        async for event in start():
            yield event
        return
    # The model runs on (a task of its own, its events queued) while the gate waits; both must succeed to go on.
    pump = _Pump(start())
    try:
        await asyncio.sleep(0)  # the model starts first
        verdict = gate()  # then the gate sends its request
        if turn.on_start is not None:
            turn.on_start()
        await verdict
        async for event in pump:
            yield event
    finally:
        await pump.close()
