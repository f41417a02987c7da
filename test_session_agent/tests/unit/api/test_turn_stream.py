"""`turn_stream`: the response (its headers) waits for the turn's model to start, for the turn's end, or for
`HEADERS_WAIT_SECONDS`, whichever comes first; it never waits on a turn that stays before its model."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from pydantic import BaseModel

from test_session_agent.agent import ModelStartCallback, TextCallback, TurnResult
from test_session_agent.api import turns


class _Done(BaseModel):
    response: str


def _done(result: TurnResult) -> BaseModel:
    return _Done(response=result.response)


def test_the_response_comes_once_the_model_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(turns, "HEADERS_WAIT_SECONDS", 60.0)
    started = threading.Event()
    release = threading.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def work(on_model_start: ModelStartCallback) -> TurnResult:
            time.sleep(0.2)  # the turn's work up to its model call
            started.set()
            on_model_start()  # from the worker thread, as a turn's model does
            release.wait(10)
            return TurnResult(session_id="s", response="hi", conversation_length=2, cached=False, duration_ms=1.0)

        async def run_turn(on_text: TextCallback, on_model_start: ModelStartCallback) -> TurnResult:
            return await loop.run_in_executor(None, work, on_model_start)

        response = await asyncio.wait_for(turns.turn_stream("s", run_turn, _done), timeout=10)
        assert started.is_set()  # not before the model started, though the turn runs on
        release.set()
        assert response.media_type == "text/event-stream"

    asyncio.run(main())


def test_a_turn_that_ends_before_its_model_does_not_hold_the_response(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(turns, "HEADERS_WAIT_SECONDS", 60.0)

    async def run_turn(on_text: TextCallback, on_model_start: ModelStartCallback) -> TurnResult:
        raise RuntimeError("refused before the model")  # e.g. a session of another actor

    async def main() -> None:
        await asyncio.wait_for(turns.turn_stream("s", run_turn, _done), timeout=10)

    asyncio.run(main())


def test_a_turn_still_before_its_model_gets_its_response_after_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(turns, "HEADERS_WAIT_SECONDS", 0.01)
    release = asyncio.Event()

    async def run_turn(on_text: TextCallback, on_model_start: ModelStartCallback) -> TurnResult:
        await release.wait()  # e.g. waiting for a busy session's lease
        return TurnResult(session_id="s", response="hi", conversation_length=2, cached=False, duration_ms=1.0)

    async def main() -> None:
        await asyncio.wait_for(turns.turn_stream("s", run_turn, _done), timeout=10)
        release.set()

    asyncio.run(main())
