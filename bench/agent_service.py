"""Agent service benchmarks on the scripted model: memory (RSS) over many distinct sessions, and the time from
request to the first SSE text event beyond the model's own time to first token."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
from strands import Agent

from test_session_agent.models.scripted import ScriptedModel

from .common import backend, median, percentile, process, scratch_database, scripted_agent


def memory(sessions: int = 10_000, concurrency: int = 8, samples: int = 8) -> dict[str, Any]:
    """RSS of the agent service after every `sessions / samples` new sessions (one turn each)."""
    points: list[tuple[int, float]] = []
    with scratch_database() as database_url, backend(database_url, workers=2) as backend_url:
        env, url = scripted_agent(backend_url)
        with process("test-session-agent", env, url) as proc:
            rss = psutil.Process(proc.pid)

            async def drive() -> float:
                started = time.perf_counter()
                async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                    queue: asyncio.Queue[int] = asyncio.Queue()
                    step = max(1, sessions // samples)

                    async def worker() -> None:
                        while True:
                            i = await queue.get()
                            r = await client.post("/process", json={"prompt": f"hello {i}", "session_id": f"m-{i}"})
                            r.raise_for_status()
                            queue.task_done()

                    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
                    for start in range(0, sessions, step):
                        for i in range(start, min(sessions, start + step)):
                            queue.put_nowait(i)
                        await queue.join()
                        points.append((min(sessions, start + step), rss.memory_info().rss / 2**20))
                    for task in tasks:
                        task.cancel()
                return time.perf_counter() - started

            elapsed = asyncio.run(drive())
            metrics = httpx.get(f"{url}/metrics").text.splitlines()
            cached = int(float(next(m for m in metrics if m.startswith("agent_cache_size ")).split()[1]))
    first_full = next((rss for n, rss in points if n >= 1000), points[0][1])
    return {
        "sessions": sessions,
        "rss_mb": {str(n): round(v, 1) for n, v in points},
        "final_rss_mb": points[-1][1],
        "growth_after_cache_full_mb": points[-1][1] - first_full,
        "cached_agents": cached,
        "turns_per_s": sessions / elapsed,
    }


def streaming(requests: int = 30, first_token_delay_ms: float = 50.0, token_delay_ms: float = 20.0) -> dict[str, Any]:
    """Median and p90 of (request → first SSE text event) minus the model's first-token delay, in ms.

    Later tokens come every `token_delay_ms`, as from a real model (an instant stream would keep the worker thread
    busy holding the GIL and measure Python's thread switch interval instead). Two agent services on one backend,
    requests alternating between them: the shipped defaults, and speculative turns off (the lease confirmed before
    the model starts), so the lever is measured alone. The
    baseline, measured alternately in the same run: a plain Strands `Agent` in this process (no HTTP, no session
    manager) on the same model, from `stream_async` to its first text event: what Strands itself costs before the
    model's first token.
    """
    configs = {
        "speculative": {},
        "lease first": {"SESSION_SPECULATIVE_TURNS": "false"},
    }
    with scratch_database() as database_url, backend(database_url) as backend_url, contextlib.ExitStack() as stack:
        clients = {}
        for name, flags in configs.items():
            env, url = scripted_agent(
                backend_url,
                SCRIPTED_FIRST_TOKEN_DELAY_MS=str(first_token_delay_ms),
                SCRIPTED_TOKEN_DELAY_MS=str(token_delay_ms),
                **flags,
            )
            stack.enter_context(process("test-session-agent", env, url))
            host, port = urlsplit(url).hostname, urlsplit(url).port
            clients[name] = http.client.HTTPConnection(host or "127.0.0.1", port, timeout=60)
            stack.callback(clients[name].close)
        overheads: dict[str, list[float]] = {name: [] for name in configs}
        baseline = []
        plain = Agent(
            model=ScriptedModel(first_token_delay=first_token_delay_ms / 1000, token_delay=token_delay_ms / 1000),
            callback_handler=None,
        )
        for i in range(requests + 3):
            in_process = asyncio.run(_first_text_ms(plain, f"stream {i}"))
            for name, client in clients.items():
                first = _first_sse_text_ms(
                    client, {"prompt": f"stream {i}", "session_id": "stream-bench-" + name.replace(" ", "-")}
                )
                if i >= 3:  # the first turns build the agent; steady state is what a chat sees
                    overheads[name].append(first - first_token_delay_ms)
            if i >= 3:
                baseline.append(in_process - first_token_delay_ms)
    ours = overheads["speculative"]
    return {
        "requests": requests,
        "model_first_token_ms": first_token_delay_ms,
        "overhead_median_ms": median(ours),
        "overhead_p90_ms": percentile(ours, 0.9),
        "lease_first_median_ms": median(overheads["lease first"]),
        "lease_first_p90_ms": percentile(overheads["lease first"], 0.9),
        "strands_in_process_median_ms": median(baseline),
        "strands_in_process_p90_ms": percentile(baseline, 0.9),
    }


def _first_sse_text_ms(client: http.client.HTTPConnection, body: dict[str, Any]) -> float:
    """Milliseconds from sending `POST /process-streaming` to its first `text` event (the stream is read whole).

    The client is the standard library's `http.client` on a kept-alive connection, as thin as a browser's
    `EventSource` or curl: httpx, the bench's first client, spent about 0.9 ms of its own per request building and
    sending it (measured with timestamps on both sides), which is the client's cost, not the service's.
    """
    payload = json.dumps(body).encode()
    started = time.perf_counter()
    first = None
    client.request("POST", "/process-streaming", body=payload, headers={"Content-Type": "application/json"})
    response = client.getresponse()
    if response.status != 200:
        raise RuntimeError(f"the stream was refused: {response.status} {response.read()!r}")
    while line := response.readline():
        if first is None and line.startswith(b"data:") and b'"type":"text"' in line:
            first = (time.perf_counter() - started) * 1000
    if first is None:
        raise RuntimeError("the stream carried no text event")
    return first


async def _first_text_ms(agent: Agent, prompt: str) -> float:
    """Milliseconds from `stream_async(prompt)` to the agent's first text event (the turn is run to its end)."""
    started = time.perf_counter()
    first = None
    async for event in agent.stream_async(prompt):
        if first is None and "data" in event:
            first = (time.perf_counter() - started) * 1000
    if first is None:
        raise RuntimeError("the agent streamed no text")
    return first
