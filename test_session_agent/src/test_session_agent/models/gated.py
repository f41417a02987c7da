"""`LeaseGatedModel`: an agent's model whose output can wait for the turn's lease, and whose call can start early.

A turn on a cached agent starts the model while its lease request is still in flight (speculative start, see
`SessionAgents`): the model computes its first event meanwhile, and Strands sees nothing of it (no text streamed, no
tool run, no message added) until the gate has opened. A gate that refuses stops the model and raises into the
agent's invocation, which then stores nothing. The lease round trip is thereby hidden behind the model's time to
first token instead of added to it.

A prefetch goes one step further back: as the turn's invocation begins, the model is started on the call Strands is
predicted to make (the history, the user's prompt, and the previous call's tools and system prompt), so Strands' own
work before its model call (hooks, tracing, copies of the conversation) runs while the model works. Strands' call is
handed the prefetched stream only when its arguments equal the predicted ones (Python equality, against a copy taken
when the prefetch started); otherwise the prefetch is stopped and the model called afresh, so what the model answers
is always the answer to Strands' call.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, Generic, Literal, TypeVar, cast

import orjson
from strands.models.model import Model
from strands.types.content import Messages
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolSpec

Gate = Callable[[], Awaitable[None]]
"""Called as the model starts: sends whatever request decides the turn, then returns what waits for the decision (it
returns when the turn may go on with this agent, or raises when it may not)."""

T = TypeVar("T")

UNCOMPARED_KWARGS = frozenset(
    {"invocation_state", "agent_metadata", "model_state", "system_prompt_content", "cancel_signal"}
)
"""Keyword arguments of `Model.stream` left out of a prefetched call and of the comparison with Strands' call; every
other one is part of both. A provider that allows prefetching (`prefetchable`) answers the same without them:
`invocation_state` and `agent_metadata` describe the caller, `model_state` is a provider's server-side state, and
`system_prompt_content` is the system prompt, which comes as its text. `cancel_signal` is Strands' own: a prefetched
call gets a `_LinkedCancelSignal` that follows the signal of the call that takes it."""


class _LinkedCancelSignal(threading.Event):
    """A prefetched call's cancel signal: set when set itself, or when the signal of the call that took it is."""

    def __init__(self) -> None:
        super().__init__()
        self.source: threading.Event | None = None

    def is_set(self) -> bool:
        """Whether the call is cancelled (this event, or the taking call's signal)."""
        return super().is_set() or (self.source is not None and self.source.is_set())


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
    """Wraps `inner` (the model doing the work); everything but the gating and the prefetch is `inner`'s.

    Args:
        inner: the Strands model (shared by many agents: the wrapper holds only this agent's gate and prefetch).

    Attributes:
        gate: set by the turn before invoking the agent; consumed by the next model call, which starts `inner` at
            once but passes on its first event only once `gate()` has returned. None: calls pass straight through.
        on_start: set by the turn; called (on the agent's thread) as each model call starts: after `inner` was
            started and, with a gate, once the gate has sent its request. None: nobody is told.
        prefetch_outcome: what became of the latest prefetch: `used` (Strands' call was the predicted one),
            `discarded` (it was not, or no call came), None (none started, or still pending).
    """

    def __init__(self, inner: Model) -> None:
        self.inner = inner
        self.gate: Gate | None = None
        self.on_start: Callable[[], None] | None = None
        # What the agent's latest model call passed besides its messages (tools, system prompt, the keyword
        # arguments compared): the next turn's first call most likely passes the same.
        self._last_call: tuple[list[ToolSpec] | None, str | None, dict[str, Any]] | None = None
        # A prefetch: the call it was started on (a copy of its arguments), its cancel signal, its stream.
        self._prefetched: tuple[list[Any], _LinkedCancelSignal, _Pump[StreamEvent]] | None = None
        self.prefetch_outcome: Literal["used", "discarded"] | None = None

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
        return self._gated(lambda: self.inner.structured_output(*args, **kwargs), None, self._take_prefetch())

    def stream(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None = None,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncIterable[StreamEvent]:
        """The inner model's stream, its first event held behind the gate when one is set.

        The prefetched stream when this is the predicted call (`prefetch`); else a prefetch is stopped.
        """
        extra = {name: value for name, value in kwargs.items() if name not in UNCOMPARED_KWARGS}
        self._last_call = (tool_specs, system_prompt, extra)
        prefetched, self._prefetched = self._prefetched, None

        def start() -> AsyncIterable[StreamEvent]:
            return self.inner.stream(messages, tool_specs, system_prompt, **kwargs)

        if prefetched is None:
            return self._gated(start, None, None)
        predicted, signal, pump = prefetched
        if [messages, tool_specs, system_prompt, extra] != predicted:
            self.prefetch_outcome = "discarded"
            return self._gated(start, None, pump)
        self.prefetch_outcome = "used"
        signal.source = kwargs.get("cancel_signal")
        return self._gated(start, pump, None)

    def prefetch(self, history: Messages, prompt: str) -> bool:
        """Start the inner model now on the call Strands' next invocation, of a text `prompt`, is predicted to make.

        Must be called on the event loop the invocation will run on, just before it; the model's first step runs at
        this loop's next iteration. The predicted call: `history` (role and content of each message) and the user's
        prompt as one text block, with the tools, system prompt and keyword arguments (but `UNCOMPARED_KWARGS`) of
        the agent's latest call. The model is given a copy of it (a JSON round trip), and so is the comparison with
        Strands' call: the agent's history may change in place meanwhile.

        Returns:
            Whether a prefetch started: not when the inner model does not allow it (`prefetchable` is not true: its
            answer may depend on more than the call's arguments, or a call costs money), when there was no earlier
            call to take the tools from, or when the call does not survive a JSON round trip unchanged (image bytes,
            NaN, tuples, a structured output model).
        """
        if not getattr(self.inner, "prefetchable", False) or self._last_call is None:
            return False
        if self._prefetched is not None:
            return False  # one at a time: the earlier one is still to be taken or discarded
        tool_specs, system_prompt, extra = self._last_call
        messages: Messages = [{"role": m["role"], "content": m["content"]} for m in history]
        messages.append({"role": "user", "content": [{"text": prompt}]})
        call = [messages, tool_specs, system_prompt, extra]
        try:
            text = orjson.dumps(call)
        except TypeError:
            return False
        predicted = orjson.loads(text)
        if predicted != call:
            return False  # lossy in JSON: the copy would not be the call
        own = orjson.loads(text)
        signal = _LinkedCancelSignal()
        self.prefetch_outcome = None
        pump = _Pump(self.inner.stream(own[0], own[1], own[2], **own[3], cancel_signal=signal))
        self._prefetched = predicted, signal, pump
        return True

    async def discard_prefetch(self) -> None:
        """Stop a prefetch that no model call took (e.g. the invocation failed before its model call)."""
        pump = self._take_prefetch()
        if pump is not None:
            await pump.close()

    def _take_prefetch(self) -> _Pump[StreamEvent] | None:
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is None:
            return None
        self.prefetch_outcome = "discarded"
        return prefetched[2]

    async def _gated(
        self, start: Callable[[], AsyncIterable[T]], prefetched: _Pump[T] | None, stale: _Pump[Any] | None
    ) -> AsyncGenerator[T, None]:
        """`prefetched`'s events when given, else `start()`'s, behind the gate.

        `stale` (a prefetch of another call) is stopped first.
        """
        if stale is not None:
            await stale.close()
        gate, self.gate = self.gate, None
        if gate is None and prefetched is None:
            if self.on_start is not None:
                self.on_start()
            async for event in start():
                yield event
            return
        # The model runs on (a task of its own, its events queued) while the gate waits; both must succeed to go on.
        pump = prefetched if prefetched is not None else _Pump(start())
        try:
            if gate is not None:
                if prefetched is None:
                    await asyncio.sleep(0)  # the model starts first
                verdict = gate()  # then the gate sends its request
                if self.on_start is not None:
                    self.on_start()
                await verdict
            elif self.on_start is not None:
                self.on_start()
            async for event in pump:
                yield event
        finally:
            await pump.close()
