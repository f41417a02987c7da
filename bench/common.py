"""Shared pieces of the benchmarks: a scratch database and backend process, medians, the results table."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from session_backend import testing
from session_backend.testing import free_port
from test_session_agent.testing import scripted_agent_env

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get(
    "BENCH_DATABASE_URL", os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
)


def encryption_key() -> str | None:
    """The wrapping key of backends and seeds when the run has encryption at rest on (`--encryption`), else None."""
    return testing.TEST_ENCRYPTION_KEY if os.environ.get("BENCH_ENCRYPTION") == "1" else None


def median(values: Sequence[float]) -> float:
    """Median of `values` (0.0 when empty)."""
    return float(statistics.median(values)) if values else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, nearest-rank."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


@contextmanager
def scratch_database() -> Iterator[str]:
    """A database `bench_<uuid>` on the benchmark server (BENCH_DATABASE_URL), dropped afterwards."""
    with testing.scratch_database(ADMIN_URL, prefix="bench") as dsn:
        yield dsn


@contextmanager
def process(name: str, env: dict[str, str], url: str, health: str = "/health") -> Iterator[subprocess.Popen[bytes]]:
    """Run console script `name` (log: .data/bench/<name>.log) until the block ends; wait for its health URL."""
    with testing.run_service(name, env, url, health=health, log=ROOT / ".data" / "bench" / f"{name}.log") as proc:
        yield proc


@contextmanager
def backend(database_url: str, workers: int = 1, env: dict[str, str] | None = None) -> Iterator[str]:
    """A `session-backend` process on `database_url` (extra environment `env`, e.g. settings); yields its URL.

    With `--encryption` (`BENCH_ENCRYPTION=1`) it runs with encryption at rest on.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "SESSION_BACKEND_WORKERS": str(workers),
        "SESSION_BACKEND_API_KEY": "",
        "LOG_LEVEL": "warning",
        "SESSION_BACKEND_ENCRYPTION_KEY": encryption_key() or "",
        **(env or {}),
    }
    with process("session-backend", environment, url, health="/ready"):
        yield url


def process_tree(pid: int) -> list[psutil.Process]:
    """Process `pid` and all its descendants (a service's supervisor and workers)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def process_trees(pids: tuple[int, ...]) -> list[psutil.Process]:
    """The processes of every tree rooted at `pids`."""
    return [p for pid in pids for p in process_tree(pid)]


def postgres_processes() -> list[psutil.Process]:
    """Every PostgreSQL process on this machine (the benchmark server's postmaster and backends)."""
    return [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")]


def _cpu_by_pid(processes: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in processes:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


@contextmanager
def cpu_meter(groups: dict[str, Callable[[], list[psutil.Process]]]) -> Iterator[dict[str, float]]:
    """Yields a dict filled, when the block ends, with each group's CPU cores used (CPU seconds per wall second,
    unrounded).

    Each group's processes are found again at the end (a process started meanwhile counts whole); the load
    generator is this process plus the children it waited for (wrk)."""
    before = {name: _cpu_by_pid(find()) for name, find in groups.items()}
    own = os.times()
    started = time.perf_counter()
    out: dict[str, float] = {}
    yield out
    wall = time.perf_counter() - started
    for name, find in groups.items():
        after = _cpu_by_pid(find())
        out[name] = sum(cpu - before[name].get(pid, 0.0) for pid, cpu in after.items()) / wall
    now = os.times()
    used = (now.user + now.system + now.children_user + now.children_system) - (
        own.user + own.system + own.children_user + own.children_system
    )
    out["load_generator"] = used / wall
    out["all"] = sum(out.values())


def listener_pid(url: str) -> int:
    """The pid of the service listening at `url`: its topmost process (the supervisor when it has workers)."""
    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            proc = psutil.Process(conn.pid)
            while (parent := proc.parent()) is not None and any("session" in part for part in parent.cmdline()):
                proc = parent
            return int(proc.pid)
    raise RuntimeError(f"no process listens on {url}")


def scripted_agent(backend_url: str, **env: str) -> tuple[dict[str, str], str]:
    """Environment and URL of an agent service on the scripted model, a free port and warnings-only logs (`env`
    overrides); start it with `process("test-session-agent", env, url)`."""
    return scripted_agent_env(backend_url, free_port(), **({"LOG_LEVEL": "warning"} | env))


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    """Print `rows` (dicts with the same keys) as an aligned table under `title`."""
    if not rows:
        return
    keys = list(rows[0])
    cells = [[_fmt(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print(f"\n{title}")
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return "" if value is None else str(value)
