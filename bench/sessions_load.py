"""Many concurrent sessions through the agent service (one device each, scripted model): every conversation must come
back complete and independent; reports throughput and per-turn p50/p99. The load test runs `drive` at 100 sessions."""

from __future__ import annotations

import asyncio
import random
import re
import ssl
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from .common import backend, percentile, process, scratch_database, scripted_agent

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class LoadResult:
    """What `drive` saw: per-turn latencies, wall time, and every way a conversation was incomplete or mixed."""

    sessions: int
    turns: int
    seconds: float
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    retries: int = 0
    refusals_ms: list[float] = field(default_factory=list)
    refusals_by_status: dict[int, int] = field(default_factory=dict)
    driver_lag_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Throughput and latency figures (JSON-ready)."""
        return {
            "sessions": self.sessions,
            "concurrency": self.concurrency,
            "turns": self.turns,
            "seconds": round(self.seconds, 2),
            "turns_per_s": round(self.turns / self.seconds, 1),
            "p50_ms": round(percentile(self.latencies_ms, 0.5), 1),
            "p99_ms": round(percentile(self.latencies_ms, 0.99), 1),
            "problems": len(self.problems),
            "retries": self.retries,
            "refused": len(self.refusals_ms),
            "refused_by_status": {str(k): v for k, v in sorted(self.refusals_by_status.items())},
            "refusal_p50_ms": round(percentile(self.refusals_ms, 0.5), 1) if self.refusals_ms else None,
            "refusal_p99_ms": round(percentile(self.refusals_ms, 0.99), 1) if self.refusals_ms else None,
            "refusal_max_ms": round(max(self.refusals_ms), 1) if self.refusals_ms else None,
            "driver_lag_p50_ms": round(percentile(self.driver_lag_ms, 0.5), 1),
            "driver_lag_p99_ms": round(percentile(self.driver_lag_ms, 0.99), 1),
        }


async def drive(
    url: str, sessions: int, turns: int = 3, concurrency: int | None = None, request_timeout: float = 300.0
) -> LoadResult:
    """Run `sessions` conversations of `turns` turns, `concurrency` at a time (default: all at once), each from its
    own device (`X-Device-ID`).

    Each turn's prompt names its device; the scripted model's reply quotes the conversation's first and latest
    prompts, and the stored history must hold exactly that device's prompts, in order, and no other device's id.
    A turn refused at admission (503/429) must carry `Retry-After`; the device waits that long (plus up to half
    again, so retries spread) and sends it again under its Idempotency-Key. `latencies_ms` are admitted turns'
    (the attempt that was answered), `refusals_ms` the refused attempts' (both as the device saw them, including
    its connection's set-up), `driver_lag_ms` how late the driver's own event loop ran (sampled every 50 ms).
    """
    result = LoadResult(sessions=sessions, turns=sessions * turns, seconds=0.0, concurrency=concurrency or sessions)
    slots = asyncio.Semaphore(result.concurrency)
    # Each device is a client of its own (one connection), as devices are. One shared client of `concurrency`
    # connections measured its own pool instead: httpcore scans every connection for each one on every request and
    # response (quadratic), which at 250 connections kept the driver's event loop busy and held turns and refusals
    # seconds in its pool before they were sent. The TLS context is made once (httpx makes one per client).
    tls = ssl.create_default_context()

    async def conversation() -> None:
        async with slots:
            try:
                async with httpx.AsyncClient(base_url=url, timeout=request_timeout, verify=tls) as client:
                    await talk(client)
            except httpx.HTTPError as e:
                result.problems.append(f"{type(e).__name__}: {e}")

    async def talk(client: httpx.AsyncClient) -> None:
        device = str(uuid.uuid4())
        session_id = None
        for n in range(1, turns + 1):
            prompt = f"{device} turn {n}"
            # A pooled keep-alive connection may be closed by the server just as it is reused: the turn is sent
            # again under its Idempotency-Key, so a turn that did run answers from its record, once.
            headers = {"X-Device-ID": device, "Idempotency-Key": f"{device}-{n}"}
            while True:
                started = time.perf_counter()
                for attempt in range(3):
                    try:
                        r = await client.post("/process", json={"prompt": prompt}, headers=headers)
                        break
                    except httpx.TransportError:
                        if attempt == 2:
                            raise
                        result.retries += 1
                elapsed_ms = (time.perf_counter() - started) * 1000
                if r.status_code not in (429, 503) or "Retry-After" not in r.headers:
                    break
                result.refusals_ms.append(elapsed_ms)
                result.refusals_by_status[r.status_code] = result.refusals_by_status.get(r.status_code, 0) + 1
                await asyncio.sleep(int(r.headers["Retry-After"]) * random.uniform(1.0, 1.5))
            result.latencies_ms.append(elapsed_ms)
            if r.status_code != 200:
                result.problems.append(f"{device}: turn {n}: HTTP {r.status_code} {r.text[:200]}")
                return
            body = r.json()
            session_id = session_id or body["session_id"]
            reply = body["response"]
            expected = f"turn {n};"
            if body["session_id"] != session_id or not reply.startswith(expected) or device not in reply:
                result.problems.append(f"{device}: turn {n}: unexpected reply {reply!r}")
        for attempt in range(3):
            try:
                history = (await client.get(f"/sessions/{session_id}/history")).json()["messages"]
                break
            except httpx.TransportError:  # a keep-alive connection closed as it is reused, as above
                if attempt == 2:
                    raise
                result.retries += 1
        prompts = [m["content"][0]["text"] for m in history if m["role"] == "user"]
        if prompts != [f"{device} turn {n}" for n in range(1, turns + 1)]:
            result.problems.append(f"{device}: stored prompts {prompts}")
        if len(history) != 2 * turns:
            result.problems.append(f"{device}: {len(history)} messages stored, expected {2 * turns}")
        strangers = {found for m in history for b in m["content"] for found in UUID_RE.findall(b.get("text", ""))}
        if strangers - {device}:
            result.problems.append(f"{device}: another device's messages in its session: {strangers - {device}}")

    async def watch_lag() -> None:
        # How late this driver's own event loop runs (every latency above includes it): sampled every 50 ms.
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.05)
            result.driver_lag_ms.append((time.perf_counter() - before - 0.05) * 1000)

    watcher = asyncio.create_task(watch_lag())
    started = time.perf_counter()
    await asyncio.gather(*(conversation() for _ in range(sessions)))
    result.seconds = time.perf_counter() - started
    watcher.cancel()
    return result


def run(sizes: tuple[int, ...] = (100, 1_000), turns: int = 3, concurrency: int = 250) -> dict[str, Any]:
    """`drive` at each size (at most `concurrency` conversations in flight) against a fresh backend and agent
    service; every conversation checked."""
    out: dict[str, Any] = {}
    with scratch_database() as database_url, backend(database_url, workers=2) as backend_url:
        env, url = scripted_agent(backend_url)
        with process("test-session-agent", env, url):
            for sessions in sizes:
                result = asyncio.run(drive(url, sessions, turns, min(sessions, concurrency)))
                print(f"sessions_load {sessions} devices: {result.summary()}", flush=True)
                if result.problems:
                    raise RuntimeError(f"{len(result.problems)} broken conversations, e.g. {result.problems[:3]}")
                out[str(sessions)] = result.summary()
    return out
