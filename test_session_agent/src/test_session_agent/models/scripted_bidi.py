"""A deterministic Strands `BidiModel` for tests: text in, a scripted text (or transcript) reply out, no audio.

Like `ScriptedModel`, its reply is computed from the conversation it holds (the history it was started with plus
what it saw since), so a test can see what history a `BidiAgent` restored and replayed on (re)connection.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterable
from typing import Any, Literal

from strands.bidi.models.model import BidiModel, ConnectionTimeoutError
from strands.bidi.types.content import BidiContentDelta, BidiMessage
from strands.bidi.types.events import (
    BidiConnectionStartEvent,
    BidiOutputEvent,
    BidiResponseStartEvent,
    BidiResponseStopEvent,
    BidiTextDeltaEvent,
    BidiTextStartEvent,
    BidiTextStopEvent,
    BidiTranscriptDeltaEvent,
    BidiTranscriptStartEvent,
    BidiTranscriptStopEvent,
)
from strands.types.content import Message, Messages, TextBlock
from strands.types.tools import ToolSpec

from .scripted import Script, echo_script

_Item = BidiOutputEvent | Exception | None


class ScriptedBidiModel(BidiModel):
    """A bidirectional model answering each text message with `script(history)`, streamed word by word.

    The history is the `messages` the connection was started with (what the agent restored) plus each user text
    and reply of this connection, as a realtime provider keeps its own context.

    Args:
        script: computes the reply text from the history (default `echo_script`).
        output: `"text"` emits text events; `"transcript"` emits assistant transcript events (as speech models do).
        token_delay: seconds between deltas.
    """

    def __init__(
        self, script: Script = echo_script, output: Literal["text", "transcript"] = "text", token_delay: float = 0.0
    ) -> None:
        self.script = script
        self.config: dict[str, Any] = {"model_id": "scripted-bidi", "output": output, "token_delay": token_delay}
        self.history: Messages = []
        self.starts = 0
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._ids = itertools.count()

    def update_config(self, **model_config: Any) -> None:
        """Merge `model_config` into the configuration."""
        self.config.update(model_config)

    def get_config(self) -> dict[str, Any]:
        """Return the configuration."""
        return self.config

    async def start(
        self,
        system_prompt: str | None = None,
        tools: list[ToolSpec] | None = None,
        messages: Messages | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a connection whose context is a copy of `messages`."""
        self.history = [_plain(m) for m in messages or []]
        self.starts += 1
        self._queue = asyncio.Queue()
        self._queue.put_nowait(BidiConnectionStartEvent(f"scripted-{uuid.uuid4().hex[:8]}", self.config["model_id"]))

    async def stop(self) -> None:
        """Close the connection (ends `receive`)."""
        self._queue.put_nowait(None)

    def drop_connection(self) -> None:
        """Simulate the provider timing the connection out: the agent restarts it, replaying its history."""
        self._queue.put_nowait(ConnectionTimeoutError("scripted connection timed out"))

    async def receive(self) -> AsyncIterable[BidiOutputEvent]:
        """Yield the events of this connection until it is closed."""
        queue = self._queue
        while (item := await queue.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield item

    async def send(self, content: BidiMessage | BidiContentDelta) -> None:
        """Answer a text message with the scripted reply; ignore audio and tool results."""
        if not isinstance(content, BidiMessage):
            return
        texts = [block.text for block in content.content if isinstance(block, TextBlock)]
        if not texts:
            return
        self.history.append({"role": "user", "content": [{"text": text} for text in texts]})
        reply = self.script(self.history)
        self.history.append({"role": "assistant", "content": [{"text": reply}]})
        await self._respond(reply)

    async def _respond(self, reply: str) -> None:
        n = next(self._ids)
        response_id, content_id = f"response-{n}", f"content-{n}"
        words = reply.split(" ")
        deltas = [w if i == 0 else " " + w for i, w in enumerate(words)]
        transcript = self.config["output"] == "transcript"
        events: list[BidiOutputEvent] = [BidiResponseStartEvent(response_id)]
        events.append(
            BidiTranscriptStartEvent("assistant", content_id) if transcript else BidiTextStartEvent(content_id)
        )
        for delta in deltas:
            events.append(
                BidiTranscriptDeltaEvent(delta, "assistant", content_id)
                if transcript
                else BidiTextDeltaEvent(delta, content_id)
            )
        events.append(BidiTranscriptStopEvent("assistant", content_id) if transcript else BidiTextStopEvent(content_id))
        events.append(BidiResponseStopEvent(response_id))
        for event in events:
            if self.config["token_delay"]:
                await asyncio.sleep(self.config["token_delay"])
            self._queue.put_nowait(event)


def _plain(message: Message) -> Message:
    """The role and text of a message (what a provider replays as context)."""
    return {"role": message["role"], "content": [{"text": b["text"]} for b in message["content"] if "text" in b]}
