"""`MODEL_PROVIDER=scripted`: a deterministic Strands `Model` for tests and benchmarks (the only LLM stand-in).

Its reply is computed from the conversation it is given, so a test can see what history the agent restored. It calls
a tool when told to: a user message `use <tool> <JSON input>` naming an offered tool becomes that tool use, and the
tool's result becomes the reply.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from strands.models.model import Model
from strands.types.content import Messages
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolSpec

from ._streaming import stop_events, text_response_events

T = TypeVar("T", bound=BaseModel)

Script = Callable[[Messages], str]

_USE_TOOL = re.compile(r"^use (?P<name>[A-Za-z_][A-Za-z0-9_\-]*)(?: (?P<input>\{.*\}))?$", re.DOTALL)


def echo_script(messages: Messages) -> str:
    """Reply naming the number of messages seen and quoting the first and the latest user text."""
    user_texts = [block["text"] for m in messages if m["role"] == "user" for block in m["content"] if "text" in block]
    first = user_texts[0] if user_texts else ""
    last = user_texts[-1] if user_texts else ""
    return f"turn {len(user_texts)}; history {len(messages)} messages; first: {first} | you said: {last}"


class ScriptedSettings(BaseSettings):
    """The scripted model's own latencies (tests and benchmarks only: not part of the service's settings)."""

    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True)

    first_token_delay_ms: float = Field(
        default=0.0,
        ge=0,
        validation_alias="SCRIPTED_FIRST_TOKEN_DELAY_MS",
        description="Scripted model: milliseconds before the first text delta.",
    )
    token_delay_ms: float = Field(
        default=0.0,
        ge=0,
        validation_alias="SCRIPTED_TOKEN_DELAY_MS",
        description="Scripted model: milliseconds between later text deltas.",
    )


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

    @classmethod
    def from_env(cls) -> ScriptedModel:
        """The model with the delays of `SCRIPTED_FIRST_TOKEN_DELAY_MS` and `SCRIPTED_TOKEN_DELAY_MS`."""
        settings = ScriptedSettings()
        return cls(first_token_delay=settings.first_token_delay_ms / 1000, token_delay=settings.token_delay_ms / 1000)

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
        """Yield the scripted reply as Strands stream events (a tool use when the user asked for one)."""
        started = time.perf_counter()
        call = requested_tool_use(messages, tool_specs or [])
        if call is not None:
            for event in tool_use_events(*call):
                yield event
            return
        reply = tool_result_reply(messages) or self.script(messages)
        words = reply.split(" ")
        deltas = [w if i == 0 else " " + w for i, w in enumerate(words)]
        for i, event in enumerate(text_response_events(deltas)):
            if "contentBlockDelta" in event:
                delay = self.config["first_token_delay"] if i == 2 else self.config["token_delay"]
                if delay:
                    await _sleep_precisely(delay)
            yield event
        latency_ms = int((time.perf_counter() - started) * 1000)
        for event in stop_events("end_turn", sum(len(str(m)) for m in messages) // 4, len(deltas), latency_ms):
            yield event

    async def structured_output(
        self, output_model: type[T], prompt: Messages, system_prompt: str | None = None, **kwargs: Any
    ) -> AsyncGenerator[dict[str, T | Any], None]:
        """Parse the scripted reply as JSON for `output_model`."""
        yield {"output": output_model.model_validate_json(self.script(prompt))}


async def _sleep_precisely(seconds: float) -> None:
    """Sleep `seconds`, waking within tens of microseconds of the deadline.

    asyncio's timers wake up to a millisecond late (epoll's resolution, rounded up); a scripted model's latency
    should be what it was configured to be, so benchmarks that subtract it measure only what comes around the model.
    The last 2 ms are spent yielding to the event loop (its other tasks run meanwhile).
    """
    deadline = time.perf_counter() + seconds
    if seconds > 0.002:
        await asyncio.sleep(seconds - 0.002)
    while time.perf_counter() < deadline:  # noqa: ASYNC110  # a deadline, to the microsecond, not an event
        await asyncio.sleep(0)


def requested_tool_use(messages: Messages, tool_specs: list[ToolSpec]) -> tuple[str, str, dict[str, Any]] | None:
    """`(tool_use_id, name, input)` when the latest message is a user's `use <tool> <JSON>` of an offered tool."""
    if not messages or messages[-1]["role"] != "user":
        return None
    # The first text block only: later ones may be context folded in for this call (injected memories).
    text = next((block["text"] for block in messages[-1]["content"] if "text" in block), "").strip()
    match = _USE_TOOL.match(text)
    if match is None or match["name"] not in {spec["name"] for spec in tool_specs}:
        return None
    return f"tooluse_{len(messages)}", match["name"], json.loads(match["input"] or "{}")


def tool_use_events(tool_use_id: str, name: str, tool_input: dict[str, Any]) -> list[StreamEvent]:
    """The stream events of one assistant message holding only a tool use."""
    return [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockStart": {"start": {"toolUse": {"toolUseId": tool_use_id, "name": name}}}},
        {"contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps(tool_input)}}}},
        {"contentBlockStop": {}},
        *stop_events("tool_use", 0, 0, 0),
    ]


def tool_result_reply(messages: Messages) -> str | None:
    """`"<tool> returned: <result>"` when the latest message carries tool results, else None."""
    if not messages:
        return None
    names = {
        block["toolUse"]["toolUseId"]: block["toolUse"]["name"]
        for m in messages
        for block in m["content"]
        if "toolUse" in block
    }
    replies = []
    for block in messages[-1]["content"]:
        if "toolResult" in block:
            result = block["toolResult"]
            text = " ".join(item.get("text") or json.dumps(item.get("json")) for item in result["content"])
            replies.append(f"{names.get(result['toolUseId'], 'tool')} returned: {text}")
    return "; ".join(replies) or None
