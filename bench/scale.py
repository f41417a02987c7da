"""Scale-out on one machine: backend appends/s at 64 clients with 1, 2 and 4 worker processes, and agent turns/s
with 1 and 2 agent-service processes, all against one PostgreSQL. Each run says where the time went: CPU seconds per
second of the backend, PostgreSQL, the load generator and the agent processes, and what PostgreSQL's sessions were
waiting on (sampled from pg_stat_activity), so the point where it stops scaling has a reason."""

from __future__ import annotations

import asyncio
import collections
import functools
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from . import sessions_load, throughput
from .common import (
    backend,
    cpu_meter,
    listener_pid,
    postgres_processes,
    process,
    process_tree,
    process_trees,
    scratch_database,
    scripted_agent,
)


async def _drive_split(
    urls: list[str], total: int, turns_each: int, concurrency: int
) -> list[sessions_load.LoadResult]:
    """`total` conversations split evenly over the agent processes at `urls`, as a load balancer would."""
    share, slots = total // len(urls), max(1, concurrency // len(urls))
    return list(await asyncio.gather(*(sessions_load.drive(u, share, turns_each, slots) for u in urls)))


@contextmanager
def _waits(database_url: str) -> Iterator[collections.Counter[str]]:
    """Samples every 50 ms what this database's active PostgreSQL sessions wait on (`CPU` when not waiting)."""
    counts: collections.Counter[str] = collections.Counter()
    stop = threading.Event()
    database = database_url.rsplit("/", 1)[1].split("?")[0]

    async def sample() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            while not stop.is_set():
                rows = await conn.fetch(
                    "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS w FROM pg_stat_activity "
                    "WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid()",
                    database,
                )
                counts.update(r["w"] for r in rows)
                await asyncio.sleep(0.05)
        finally:
            await conn.close()

    thread = threading.Thread(target=lambda: asyncio.run(sample()), daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join(timeout=5)


def _top(counts: collections.Counter[str], n: int = 3) -> str:
    total = sum(counts.values()) or 1
    return ", ".join(f"{name} {100 * c / total:.0f}%" for name, c in counts.most_common(n))


def appends(workers: tuple[int, ...] = (1, 2, 4), clients: int = 64, seconds: int = 5) -> list[dict[str, Any]]:
    """wrk at `clients` connections against a backend with each number of worker processes (fresh database each)."""
    rows = []
    for n in workers:
        with scratch_database() as database_url, tempfile.TemporaryDirectory() as work:
            throughput._seed(database_url, threads=2)
            with backend(database_url, workers=n) as url, _waits(database_url) as waits:
                result = throughput._wrk(url, clients, seconds, Path(work))
            rows.append(
                {
                    "workers": n,
                    "appends_per_s": round(result["tps"], 1),
                    "p50_ms": round(result["p50_ms"], 1),
                    "p99_ms": round(result["p99_ms"], 1),
                    "failed": result["failed"],
                    "cpu_cores": {name: round(cores, 2) for name, cores in result["cpu_cores"].items()},
                    "postgres_waits": _top(waits),
                }
            )
    return rows


def turns(
    agents: tuple[int, ...] = (1, 2), sessions: int = 200, turns_each: int = 3, concurrency: int = 64
) -> list[dict[str, Any]]:
    """Agent turns/s (scripted model, every turn committed) with 1 and 2 agent-service processes on one backend
    (2 workers), conversations split evenly between the processes as a load balancer would."""
    rows = []
    for n in agents:
        with scratch_database() as database_url, backend(database_url, workers=2) as backend_url, ExitStack() as stack:
            urls = []
            pids = []
            for _ in range(n):
                env, url = scripted_agent(backend_url)
                proc = stack.enter_context(process("test-session-agent", env, url))
                urls.append(url)
                pids.append(proc.pid)
            backend_pid = listener_pid(backend_url)

            asyncio.run(
                _drive_split(urls, 20 * n, turns_each, concurrency)
            )  # warm-up: model objects, pools, agent caches
            groups: dict[str, Callable[[], list[psutil.Process]]] = {
                "agents": functools.partial(process_trees, tuple(pids)),
                "backend": functools.partial(process_tree, backend_pid),
                "postgres": postgres_processes,
            }
            with cpu_meter(groups) as cpu:
                started = time.perf_counter()
                results = asyncio.run(_drive_split(urls, sessions, turns_each, concurrency))
                wall = time.perf_counter() - started
            problems = [p for r in results for p in r.problems]
            if problems:
                raise RuntimeError(f"{len(problems)} broken conversations, e.g. {problems[:3]}")
            latencies = sorted(ms for r in results for ms in r.latencies_ms)
            rows.append(
                {
                    "agent_processes": n,
                    "turns_per_s": round(sum(r.turns for r in results) / wall, 1),
                    "p50_ms": round(latencies[len(latencies) // 2], 1),
                    "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
                    "cpu_cores": {name: round(cores, 2) for name, cores in cpu.items()},
                }
            )
    return rows


def run(seconds: int = 5, sessions: int = 200) -> dict[str, Any]:
    """Both scale-out tables."""
    return {"cores": os.cpu_count(), "appends": appends(seconds=seconds), "turns": turns(sessions=sessions)}
