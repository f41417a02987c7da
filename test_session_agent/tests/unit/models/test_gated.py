"""`LeaseGatedModel.prefetch`: a model call started ahead of Strands' is used only when Strands' call is the predicted
one; otherwise it is stopped and the model answers Strands' actual call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import Any

from strands import Agent
from strands.hooks import BeforeModelCallEvent
from strands.types.content import Messages
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolSpec

from test_session_agent.agent import _invoke
from test_session_agent.models.gated import LeaseGatedModel
from test_session_agent.models.scripted import ScriptedModel


class CountingModel(ScriptedModel):
    """A scripted model that records each call's messages, system prompt and cancel signal, which calls ran to their
    end (`finished`) and which were closed (`closed`, whether stopped early or not)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[Messages, str | None]] = []
        self.signals: list[Any] = []
        self.finished: list[bool] = []
        self.closed: list[bool] = []

    async def stream(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None = None,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncIterable[StreamEvent]:
        self.calls.append((messages, system_prompt))
        self.signals.append(kwargs.get("cancel_signal"))
        index = len(self.finished)
        self.finished.append(False)
        self.closed.append(False)
        try:
            async for event in super().stream(messages, tool_specs, system_prompt, **kwargs):
                yield event
            self.finished[index] = True
        finally:
            self.closed[index] = True


class NotPrefetchable(CountingModel):
    prefetchable = False


def _agent(inner: ScriptedModel, system_prompt: str = "be brief") -> tuple[Agent, LeaseGatedModel]:
    model = LeaseGatedModel(inner)
    return Agent(model=model, system_prompt=system_prompt, callback_handler=None), model


def _turn(agent: Agent, prompt: str, *, prefetch: bool = True) -> str:
    return str(asyncio.run(_invoke(agent, prompt, None, prefetch=prefetch))).strip()


def test_a_predicted_call_is_used_and_the_model_runs_once() -> None:
    inner = CountingModel()
    agent, model = _agent(inner)
    _turn(agent, "one")  # the first call of an agent has nothing to predict tools and system prompt from
    assert model.prefetch_outcome is None and len(inner.calls) == 1

    reply = _turn(agent, "two")
    assert model.prefetch_outcome == "used"
    assert len(inner.calls) == 2 and all(inner.finished)
    assert reply == "turn 2; history 3 messages; first: one | you said: two"
    assert [m["role"] for m in agent.messages] == ["user", "assistant", "user", "assistant"]


def test_the_model_starts_before_strands_work_up_to_its_call() -> None:
    inner = CountingModel()
    agent, _ = _agent(inner)
    _turn(agent, "one")
    seen: list[int] = []
    agent.hooks.add_callback(BeforeModelCallEvent, lambda event: seen.append(len(inner.calls)))
    _turn(agent, "two")
    assert seen == [2]  # the hook, which Strands runs just before its model call, saw the model already started
    _turn(agent, "three", prefetch=False)
    assert seen == [2, 2]  # without a prefetch the model had not started yet


def test_a_call_other_than_predicted_stops_the_prefetch_and_gets_its_own_answer() -> None:
    inner = CountingModel(first_token_delay=0.05)
    agent, model = _agent(inner)
    _turn(agent, "one")
    agent.system_prompt = "be verbose"  # Strands' next call differs from the prediction (the latest call's prompt)
    reply = _turn(agent, "two")
    assert model.prefetch_outcome == "discarded"
    assert [system for _, system in inner.calls] == ["be brief", "be brief", "be verbose"]
    assert inner.finished == [True, False, True]  # the prefetch was stopped before its end
    assert reply == "turn 2; history 3 messages; first: one | you said: two"


def test_history_changed_in_place_after_the_prefetch_is_not_mistaken_for_the_prediction() -> None:
    inner = CountingModel()
    agent, model = _agent(inner)
    _turn(agent, "one")

    def rewrite(event: BeforeModelCallEvent) -> None:
        event.agent.messages[0]["content"][0]["text"] = "ONE"  # in place, as a conversation manager may

    agent.hooks.add_callback(BeforeModelCallEvent, rewrite)
    reply = _turn(agent, "two")
    assert model.prefetch_outcome == "discarded"
    assert reply == "turn 2; history 3 messages; first: ONE | you said: two"


def test_a_prefetch_no_call_takes_is_stopped_by_the_invocation() -> None:
    inner = CountingModel(first_token_delay=0.5)
    agent, model = _agent(inner)
    _turn(agent, "one")

    def fail(event: BeforeModelCallEvent) -> None:
        raise RuntimeError("refused before the model call")

    agent.hooks.add_callback(BeforeModelCallEvent, fail)

    async def invoke() -> list[bool]:
        try:
            await _invoke(agent, "two", None, prefetch=True)
        except RuntimeError:
            return list(inner.closed)  # as `_invoke` returns, before the event loop's shutdown closes what is left
        raise AssertionError("the hook's error was not raised")

    assert asyncio.run(invoke()) == [True, True]
    assert model.prefetch_outcome == "discarded"
    assert len(inner.calls) == 2 and inner.finished == [True, False]


def test_the_calls_cancel_signal_reaches_the_prefetched_model() -> None:
    inner = CountingModel()
    agent, model = _agent(inner)
    _turn(agent, "one")
    _turn(agent, "two")
    assert model.prefetch_outcome == "used"
    prefetched_signal = inner.signals[1]
    assert prefetched_signal is not agent.cancel_signal and not prefetched_signal.is_set()
    agent.cancel_signal.set()  # what `agent.cancel()` sets
    assert prefetched_signal.is_set()


def test_only_providers_that_allow_it_are_prefetched() -> None:
    inner = NotPrefetchable()
    agent, model = _agent(inner)
    _turn(agent, "one")
    _turn(agent, "two")
    assert model.prefetch_outcome is None and len(inner.calls) == 2


def test_a_call_json_cannot_copy_exactly_is_not_prefetched() -> None:
    inner = CountingModel()
    agent, model = _agent(inner)
    _turn(agent, "one")
    image: Any = {"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}}
    nan: Any = {"toolResult": {"toolUseId": "t1", "status": "success", "content": [{"json": {"v": float("nan")}}]}}

    async def prefetched(block: Any | None) -> bool:
        content = agent.messages[0]["content"]
        content.extend([block] if block is not None else [])
        try:
            return model.prefetch(agent.messages, "two")
        finally:
            await model.discard_prefetch()
            del content[1:]

    # Not JSON at all; JSON that would come back as null; the plain conversation.
    assert [asyncio.run(prefetched(block)) for block in (image, nan, None)] == [False, False, True]
