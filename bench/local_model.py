"""Tokens per second of the bundled local model (Qwen2.5-Coder-0.5B-Instruct, llama.cpp via xllamacpp, this machine's
cores)."""

from __future__ import annotations

import asyncio
import time
from importlib import metadata
from typing import Any

from test_session_agent.models.local import LocalLlamaModel

from .common import median

PROMPT = "Write a short story about a database that never forgets a conversation."


def run(samples: int = 3, max_tokens: int = 128) -> dict[str, Any]:
    """Median generation speed (completion tokens / s) and time to first token over `samples` replies."""
    model = LocalLlamaModel(max_tokens=max_tokens, temperature=0.7)
    started = time.perf_counter()
    model.load()
    load_s = time.perf_counter() - started

    async def one(seed: int) -> tuple[float, float]:
        model.update_config(seed=seed)
        begun = time.perf_counter()
        first = None
        tokens = 0
        async for event in model.stream([{"role": "user", "content": [{"text": PROMPT}]}]):
            if "contentBlockDelta" in event and first is None:
                first = time.perf_counter() - begun
            if "metadata" in event:
                tokens = event["metadata"]["usage"]["outputTokens"]
        total = time.perf_counter() - begun
        return tokens / (total - (first or 0.0)), first or 0.0

    results = [asyncio.run(one(seed)) for seed in range(samples)]
    return {
        "load_s": load_s,
        "tokens_per_s": median([r[0] for r in results]),
        "first_token_ms": median([r[1] * 1000 for r in results]),
        "max_tokens": max_tokens,
        "runtime": f"xllamacpp {metadata.version('xllamacpp')}",
    }
