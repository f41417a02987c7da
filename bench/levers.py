"""The backend's throughput levers, alone and combined: message appends/s at 64 clients (wrk, as `throughput.py`)
with neither, the hot path only, group commit only, and both, against raw pgbench INSERTs measured in the same run.
Rounds alternate the configurations (in a rotating order) and the pgbench baseline, so machine noise hits all alike."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from session_backend.settings import Settings

from . import throughput
from .common import backend, median, scratch_database

GROUP_COMMIT = str(Settings.model_fields["group_commit"].default or 64)

CONFIGS: dict[str, dict[str, str]] = {
    "neither": {"SESSION_BACKEND_HOT_PATH": "false", "SESSION_BACKEND_GROUP_COMMIT": "0"},
    "hot path": {"SESSION_BACKEND_HOT_PATH": "true", "SESSION_BACKEND_GROUP_COMMIT": "0"},
    "group commit": {"SESSION_BACKEND_HOT_PATH": "false", "SESSION_BACKEND_GROUP_COMMIT": GROUP_COMMIT},
    "both": {"SESSION_BACKEND_HOT_PATH": "true", "SESSION_BACKEND_GROUP_COMMIT": GROUP_COMMIT},
}


def run(clients: int = 64, seconds: int = 5, rounds: int = 3, workers: int = 2) -> dict[str, Any]:
    """Median appends/s (p50/p99 ms, CPU us per append) per configuration and of pgbench, with each ratio
    ours / pgbench."""
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
                "backend_cpu_us": median([x["backend_cpu_us"] for x in runs[name]]),
                "postgres_cpu_us": median([x["postgres_cpu_us"] for x in runs[name]]),
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
