"""The backend's throughput levers, alone and combined: message appends/s at 64 clients (wrk, as `throughput.py`)
with neither, the hot path only, group commit only, and both, against raw pgbench INSERTs measured in the same run.
Rounds alternate the configurations (in a rotating order) and the pgbench baseline, so machine noise hits all alike."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from session_backend.settings import Settings

from . import sessions_load, throughput
from .common import backend, median, percentile, process, scratch_database, scripted_agent

GROUP_COMMIT = str(Settings.model_fields["group_commit"].default or 64)

CONFIGS: dict[str, dict[str, str]] = {
    "neither": {"SESSION_BACKEND_HOT_PATH": "false", "SESSION_BACKEND_GROUP_COMMIT": "0"},
    "hot path": {"SESSION_BACKEND_HOT_PATH": "true", "SESSION_BACKEND_GROUP_COMMIT": "0"},
    "group commit": {"SESSION_BACKEND_HOT_PATH": "false", "SESSION_BACKEND_GROUP_COMMIT": GROUP_COMMIT},
    "both": {"SESSION_BACKEND_HOT_PATH": "true", "SESSION_BACKEND_GROUP_COMMIT": GROUP_COMMIT},
}


def run(clients: int = 64, seconds: int = 5, rounds: int = 3, workers: int = 2) -> dict[str, Any]:
    """Median appends/s (and p50/p99 ms) per configuration and of pgbench, with each ratio ours / pgbench."""
    names = list(CONFIGS)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in [*names, "pgbench"]}
    with scratch_database() as database_url, tempfile.TemporaryDirectory() as work:
        sessions = tuple(f"lv{r}-{i}" for r in range(rounds) for i in range(len(names)))
        throughput._seed(database_url, threads=2, sessions=sessions)
        for r in range(rounds):
            for k in range(len(names)):
                i = (r + k) % len(names)
                with backend(database_url, workers=workers, env=CONFIGS[names[i]]) as url:
                    runs[names[i]].append(throughput._wrk(url, clients, seconds, Path(work), session=f"lv{r}-{i}"))
            # pgbench while no backend holds connections (as in `throughput.py`).
            runs["pgbench"].append(throughput._pgbench(database_url, clients, seconds, Path(work)))
    pgbench_tps = median([x["tps"] for x in runs["pgbench"]])
    rows = []
    for name in names:
        tps = median([x["tps"] for x in runs[name]])
        rows.append(
            {
                "config": name,
                "backend_tps": tps,
                "backend_p50_ms": median([x["p50_ms"] for x in runs[name]]),
                "backend_p99_ms": median([x["p99_ms"] for x in runs[name]]),
                "backend_failed": sum(x["failed"] for x in runs[name]),
                "runs_tps": [x["tps"] for x in runs[name]],
                "ratio": tps / pgbench_tps if pgbench_tps else 0.0,
            }
        )
    return {
        "clients": clients,
        "seconds": seconds,
        "rounds": rounds,
        "workers": workers,
        "group_commit": int(GROUP_COMMIT),
        "pgbench_tps": pgbench_tps,
        "pgbench_runs_tps": [x["tps"] for x in runs["pgbench"]],
        "rows": rows,
    }


def lease_release(sessions: int = 200, turns: int = 3, concurrency: int = 64, rounds: int = 3) -> dict[str, Any]:
    """The agent-side lever: turns/s through an agent service (scripted model) with the lease ended inside the
    turn's commit (2 backend requests per turn) and with a release request of its own (3), alternating rounds on one
    backend (shipped defaults). Every conversation is checked complete."""
    configs = {"released with the commit": "true", "released apart": "false"}
    runs: dict[str, list[sessions_load.LoadResult]] = {name: [] for name in configs}
    with scratch_database() as database_url, backend(database_url, workers=2) as backend_url:
        for r in range(rounds):
            for name in list(configs)[r % 2 :] + list(configs)[: r % 2]:
                env, url = scripted_agent(backend_url, SESSION_RELEASE_LEASE_WITH_COMMIT=configs[name])
                with process("test-session-agent", env, url):
                    asyncio.run(sessions_load.drive(url, 20, turns, 20))  # warm-up
                    result = asyncio.run(sessions_load.drive(url, sessions, turns, concurrency))
                if result.problems:
                    raise RuntimeError(f"{len(result.problems)} broken conversations, e.g. {result.problems[:3]}")
                runs[name].append(result)
    return {
        "sessions": sessions,
        "turns": turns,
        "concurrency": concurrency,
        "rounds": rounds,
        "rows": [
            {
                "config": name,
                "turns_per_s": median([x.turns / x.seconds for x in results]),
                "p50_ms": median([percentile(x.latencies_ms, 0.5) for x in results]),
                "runs_turns_per_s": [round(x.turns / x.seconds, 1) for x in results],
            }
            for name, results in runs.items()
        ],
    }
