"""Helpers for tests, benchmarks and the demo: free ports, console scripts run as real processes, scratch databases."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

# A fixed wrapping key for tests and benchmarks that run with encryption at rest (never use it for real data).
TEST_ENCRYPTION_KEY = "c2Vzc2lvbi1iYWNrZW5kIHRlc3Qga2V5IDAwMDAwMDA="
"""Base64 of 32 bytes: the `SESSION_BACKEND_ENCRYPTION_KEY` of test runs with encryption on."""

ENCRYPTION_MODES: dict[str, Any] = {
    "argnames": "encryption_key",
    "argvalues": ["", TEST_ENCRYPTION_KEY],
    "ids": ["plain", "encrypted"],
    "indirect": True,
    "scope": "module",
}
"""`pytestmark = pytest.mark.parametrize(**ENCRYPTION_MODES)` runs a test module twice, encryption at rest off then on,
each on its own database (the root conftest's `encryption_key` fixture)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _console_script(name: str) -> list[str]:
    exe = shutil.which(name, path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", name.replace("-", "_")]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def run_service(
    name: str, env: dict[str, str], url: str, *, health: str = "/health", timeout: float = 120, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run console script `name` as a process (environment: ours plus `env`) until the block ends.

    Waits until `url + health` answers 200 before yielding the process; stops it with SIGTERM afterwards (SIGKILL
    after 30 s). Output goes to `log` (appended) or is discarded.

    Raises:
        RuntimeError: the process exited, or did not answer within `timeout` seconds.
    """
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("ab") if log is not None else None
    proc = subprocess.Popen(
        _console_script(name), env=os.environ | env, stdout=out or subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + timeout
        while not _answers(url + health):
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer {health} within {timeout} s; see {log}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if out is not None:
            out.close()


def with_database(dsn: str, database: str) -> str:
    """`dsn` pointing at `database` instead (query parameters such as a socket `host` are kept)."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


@contextmanager
def scratch_database(admin_dsn: str, prefix: str = "test") -> Iterator[str]:
    """Create database `<prefix>_<uuid>` on the server of `admin_dsn`, yield its DSN, drop it (FORCE) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(admin_dsn, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def memories_stalled(database_url: str) -> Iterator[None]:
    """Every statement on `actor_memories` waits until the block ends.

    Another transaction, on a thread of its own, holds the table locked (ACCESS EXCLUSIVE) from before the block starts.
    """
    locked, release = threading.Event(), threading.Event()

    async def hold() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE actor_memories IN ACCESS EXCLUSIVE MODE")
                locked.set()
                await asyncio.to_thread(release.wait)
        finally:
            await conn.close()

    holder = threading.Thread(target=asyncio.run, args=(hold(),))
    holder.start()
    try:
        assert locked.wait(60)
        yield
    finally:
        release.set()
        holder.join()
