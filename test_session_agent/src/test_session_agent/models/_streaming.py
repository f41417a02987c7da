"""Shared pieces of the in-process providers: Strands messages → chat messages, and stream event builders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from strands.types.content import Messages
from strands.types.streaming import StreamEvent


def to_chat_messages(messages: Messages, system_prompt: str | None) -> list[dict[str, str]]:
    """Flatten Strands messages (lists of content blocks) into `{"role", "content": str}` chat messages.

    Text blocks are joined; tool uses and results are rendered as text (the small local model has no tools);
    images and documents are replaced by a placeholder.
    """
    chat: list[dict[str, str]] = []
    if system_prompt:
        chat.append({"role": "system", "content": system_prompt})
    for message in messages:
        parts: list[str] = []
        for block in message.get("content", []):
            if "text" in block:
                parts.append(block["text"])
            elif "toolUse" in block:
                tool_use = block["toolUse"]
                parts.append(f"[tool call {tool_use.get('name')}: {json.dumps(tool_use.get('input'))}]")
            elif "toolResult" in block:
                for item in block["toolResult"].get("content", []):
                    parts.append(item.get("text") or json.dumps(item.get("json")))
            elif "image" in block or "document" in block:
                parts.append("[attachment omitted]")
        chat.append({"role": message["role"], "content": "\n".join(p for p in parts if p)})
    return chat


def text_response_events(deltas: Iterator[str] | list[str]) -> Iterator[StreamEvent]:
    """The start/delta/stop events of one assistant text block (no messageStop/metadata)."""
    yield {"messageStart": {"role": "assistant"}}
    yield {"contentBlockStart": {"start": {}}}
    for delta in deltas:
        yield {"contentBlockDelta": {"delta": {"text": delta}}}
    yield {"contentBlockStop": {}}


def stop_events(stop_reason: str, input_tokens: int, output_tokens: int, latency_ms: int) -> list[StreamEvent]:
    """MessageStop and metadata (token usage, latency in ms)."""
    usage: Any = {
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "totalTokens": input_tokens + output_tokens,
    }
    return [
        {"messageStop": {"stopReason": stop_reason}},  # type: ignore[typeddict-item]
        {"metadata": {"usage": usage, "metrics": {"latencyMs": latency_ms}}},
    ]
