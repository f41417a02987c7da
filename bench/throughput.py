"""Backend throughput: message appends per second and latency at 1, 16 and 64 concurrent clients, driven by `wrk`
(C, keep-alive, Lua-built bodies), against raw single-row INSERTs of the same rows by `pgbench` on the same server."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import psutil

from session_backend.db.migrations import apply_migrations

from .common import backend, cpu_meter, listener_pid, postgres_processes, process_tree, scratch_database
from .seed import TEXT

AGENTS = 64
WRK_LUA = """
local counter = 0
local thread_id = 0
local text = %(text)s
function setup(thread)
  thread:set("tid", %(tid)s)
end
function init(args)
  thread_id = tid
end
request = function()
  local agent = counter %% %(agents)d
  local message_id = counter
  counter = counter + 1
  local body = '{"message_id":' .. message_id .. ',"message":{"role":"user","content":[{"text":"' .. text .. '"}]}}'
  return wrk.format("POST", "/v1/sessions/%(session)s/agents/t" .. thread_id .. "-a" .. agent .. "/messages",
                    {["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "non2xx": %%d, "errors": %%d, ' ..
    '"p50_us": %%d, "p99_us": %%d}\\n', summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _seed(database_url: str, threads: int, sessions: tuple[str, ...] = ("wrk",)) -> None:
    """Create the pgbench session and, for wrk, `sessions` (one per run: a run appending into another run's rows
    would measure identical retries, not inserts), each with its agents."""

    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await apply_migrations(conn)
            for session_id in (*sessions, "pgb"):
                await conn.execute("INSERT INTO sessions (session_id) VALUES ($1) ON CONFLICT DO NOTHING", session_id)
            agents = [(s, f"t{t}-a{a}") for s in sessions for t in range(threads) for a in range(AGENTS)]
            agents += [("pgb", f"a{a}") for a in range(AGENTS)]
            await conn.executemany("INSERT INTO agents (session_id, agent_id) VALUES ($1, $2)", agents)
            await conn.execute("CREATE SEQUENCE IF NOT EXISTS pgb_seq")
        finally:
            await conn.close()

    asyncio.run(run())


def _wrk(url: str, clients: int, seconds: int, lua_dir: Path, session: str = "wrk") -> dict[str, Any]:
    """One wrk run of appends into `session`: appends/s, p50/p99 ms, failures, CPU cores busy per process group
    (`common.cpu_meter`), and the CPU microseconds per append of the backend's processes and of PostgreSQL's (a
    steadier figure than appends/s on a shared machine)."""
    threads = min(2, clients)
    # wrk's Lua `setup` runs once per thread in creation order; a counter in the setup chunk numbers them.
    lua = WRK_LUA.replace('thread:set("tid", %(tid)s)', 'thread:set("tid", next_tid); next_tid = next_tid + 1')
    lua = "next_tid = 0\n" + lua % {"text": json.dumps(TEXT), "agents": AGENTS, "tid": "", "session": session}
    script = lua_dir / "append.lua"
    script.write_text(lua)
    groups: dict[str, Callable[[], list[psutil.Process]]] = {
        "backend": functools.partial(process_tree, listener_pid(url)),
        "postgres": postgres_processes,
    }
    with cpu_meter(groups) as cores:
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", str(script), url],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        )
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    tps = result["requests"] / (result["duration_us"] / 1e6)
    return {
        "tps": tps,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "failed": result["non2xx"] + result["errors"],
        "cpu_cores": cores,
        "backend_cpu_us": cores["backend"] / tps * 1e6 if tps else 0.0,
        "postgres_cpu_us": cores["postgres"] / tps * 1e6 if tps else 0.0,
    }


def _pgbench(database_url: str, clients: int, seconds: int, work: Path) -> dict[str, Any]:
    body = json.dumps(
        {
            "message": {"role": "user", "content": [{"text": TEXT}]},
            "message_id": 0,
            "redact_message": None,
            "created_at": "2026-01-01T00:00:00.000000+00:00",
            "updated_at": "2026-01-01T00:00:00.000000+00:00",
        }
    ).replace("'", "''")
    message = json.dumps({"role": "user", "content": [{"text": TEXT}]}).replace("'", "''")
    script = work / "insert.sql"
    script.write_text(
        f"\\set aid random(0, {AGENTS - 1})\n"
        "INSERT INTO messages (session_id, agent_id, message_id, message, redact_message, created_at, updated_at, "
        "body) "
        f"VALUES ('pgb', 'a' || :aid, nextval('pgb_seq'), '{message}'::jsonb, NULL, now(), now(), '{body}');\n"
    )
    parts = urlsplit(database_url)
    cmd = [
        "pgbench",
        "-n",
        "-M",
        "prepared",
        "-f",
        str(script),
        "-c",
        str(clients),
        "-j",
        str(min(2, clients)),
        "-T",
        str(seconds),
        "-r",
        "-h",
        parts.hostname or "127.0.0.1",
        "-p",
        str(parts.port or 5432),
        "-U",
        parts.username or "postgres",
        parts.path.lstrip("/"),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))  # type: ignore[union-attr]
    return {"tps": tps, "avg_ms": latency}


def run(concurrency: tuple[int, ...] = (1, 16, 64), seconds: int = 5, workers: int = 2) -> dict[str, Any]:
    """Appends/s and latency per concurrency for the backend and for pgbench, with the ratio ours / pgbench."""
    for tool in ("wrk", "pgbench"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (make bench installs it with apt-get)")
    rows = []
    with scratch_database() as database_url, tempfile.TemporaryDirectory() as work:
        _seed(database_url, threads=2, sessions=tuple(f"wrk{clients}" for clients in concurrency))
        with backend(database_url, workers=workers) as url:
            ours_by_clients = {
                clients: _wrk(url, clients, seconds, Path(work), session=f"wrk{clients}") for clients in concurrency
            }
        # pgbench runs after the backend stopped: its pool would otherwise hold connections pgbench needs.
        for clients in concurrency:
            ours = ours_by_clients[clients]
            raw = _pgbench(database_url, clients, seconds, Path(work))
            rows.append(
                {
                    "clients": clients,
                    "backend_tps": ours["tps"],
                    "backend_p50_ms": ours["p50_ms"],
                    "backend_p99_ms": ours["p99_ms"],
                    "backend_failed": ours["failed"],
                    "backend_cpu_us": ours["backend_cpu_us"],
                    "postgres_cpu_us": ours["postgres_cpu_us"],
                    "pgbench_tps": raw["tps"],
                    "pgbench_avg_ms": raw["avg_ms"],
                    "ratio": ours["tps"] / raw["tps"] if raw["tps"] else 0.0,
                }
            )
    return {"workers": workers, "seconds": seconds, "rows": rows}
