"""`MODEL_PROVIDER=scripted`: a deterministic Strands `Model` for tests and benchmarks (the only LLM stand-in).

Its reply is computed from the conversation it is given, so a test can see what history the agent restored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from strands.models.model import Model
from strands.types.content import Messages
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolSpec

from ._streaming import stop_events, text_response_events

T = TypeVar("T", bound=BaseModel)

Script = Callable[[Messages], str]


def echo_script(messages: Messages) -> str:
    """Reply naming the number of messages seen and quoting the first and the latest user text."""
    user_texts = [block["text"] for m in messages if m["role"] == "user" for block in m["content"] if "text" in block]
    first = user_texts[0] if user_texts else ""
    last = user_texts[-1] if user_texts else ""
    return f"turn {len(user_texts)}; history {len(messages)} messages; first: {first} | you said: {last}"


class ScriptedModel(Model):
    """A Strands model whose reply is `script(messages)`, streamed word by word.

    Args:
        script: computes the reply text from the conversation (default `echo_script`).
        first_token_delay: seconds before the first text delta (simulates model latency).
        token_delay: seconds between later deltas.
    """

    def __init__(self, script: Script = echo_script, first_token_delay: float = 0.0, token_delay: float = 0.0) -> None:
        self.script = script
        self.config: dict[str, Any] = {"first_token_delay": first_token_delay, "token_delay": token_delay}

    def update_config(self, **model_config: Any) -> None:
        """Merge `model_config` into the configuration."""
        self.config.update(model_config)

    def get_config(self) -> dict[str, Any]:
        """Return the configuration."""
        return self.config

    async def stream(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None = None,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncIterable[StreamEvent]:
        """Yield the scripted reply as Strands stream events."""
        started = time.perf_counter()
        reply = self.script(messages)
        words = reply.split(" ")
        deltas = [w if i == 0 else " " + w for i, w in enumerate(words)]
        for i, event in enumerate(text_response_events(deltas)):
            if "contentBlockDelta" in event:
                delay = self.config["first_token_delay"] if i == 2 else self.config["token_delay"]
                if delay:
                    await asyncio.sleep(delay)
            yield event
        latency_ms = int((time.perf_counter() - started) * 1000)
        for event in stop_events("end_turn", sum(len(str(m)) for m in messages) // 4, len(deltas), latency_ms):
            yield event

    async def structured_output(
        self, output_model: type[T], prompt: Messages, system_prompt: str | None = None, **kwargs: Any
    ) -> AsyncGenerator[dict[str, T | Any], None]:
        """Parse the scripted reply as JSON for `output_model`."""
        yield {"output": output_model.model_validate_json(self.script(prompt))}
