"""The schema at start-up: append-only migrations, then the SQL functions of `sql/functions.py`.

A migration's list index is its version; a shipped entry is never edited, a fix is a new one. Every shipped
statement lives in `sql/migrations.py` (`MIGRATIONS`), a module holding nothing else, not in the `sql/` modules people
edit for other reasons. Functions are reinstalled whenever their definition changes.
"""

from __future__ import annotations

import logging

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from ..sql.functions import FUNCTIONS, SqlFunction
from ..sql.migrations import MIGRATIONS

Connection = asyncpg.Connection | PoolConnectionProxy

logger = logging.getLogger(__name__)

# Any constant shared by every replica; pg_advisory_xact_lock serialises concurrent start-ups on it.
MIGRATION_LOCK_KEY = 7_316_284_019

CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

SELECT_FUNCTION_RECORD = "SELECT sha256, version FROM schema_functions WHERE name = $1"

RECORD_FUNCTION = """
INSERT INTO schema_functions (name, sha256, version) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET sha256 = EXCLUDED.sha256, version = EXCLUDED.version, installed_at = now()
"""


async def apply_migrations(conn: Connection) -> list[int]:
    """Apply every migration not yet recorded in `schema_migrations`, then install the SQL functions.

    Each migration runs in its own transaction; `install_functions` follows.

    Safe when several replicas start at once: each step runs under a transaction-scoped advisory lock and re-checks
    what is recorded after taking it.

    Args:
        conn: an open connection with rights to create tables.

    Returns:
        The versions (1-based) applied by this call; empty when the schema was already current.
    """
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(CREATE_VERSION_TABLE)
    for version, statement in enumerate(MIGRATIONS, start=1):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
            done = await conn.fetchval("SELECT 1 FROM schema_migrations WHERE version = $1", version)
            if done:
                continue
            await conn.execute(statement)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
            logger.info("version=<%d> | applied migration", version)
    await install_functions(conn)
    return applied


def _needs_install(function: SqlFunction, record: asyncpg.Record | None) -> bool:
    if record is None:
        return True
    if record["version"] > function.version:
        logger.warning(
            "function=<%s>, installed=<%d>, ours=<%d> | a newer replica installed a newer version; keeping it",
            function.name,
            record["version"],
            function.version,
        )
        return False
    if record["version"] == function.version and record["sha256"] != function.sha256:
        logger.warning(
            "function=<%s>, version=<%d> | definition changed without a version bump; installing this one",
            function.name,
            function.version,
        )
    return bool(record["version"] < function.version or record["sha256"] != function.sha256)


async def install_functions(conn: Connection, functions: tuple[SqlFunction, ...] = FUNCTIONS) -> list[str]:
    """Create or replace every SQL function not recorded at its version and sha256.

    A function recorded at a higher version than ours (installed by a newer replica during a rolling deploy) is kept,
    never downgraded. Each install runs in its own transaction under the migration lock, after re-checking the
    record, so replicas starting at once install a changed function once and skip an identical one.

    Args:
        conn: an open connection on a database migrated to the latest version.
        functions: the functions to install (default: all of `sql/functions.py`).

    Returns:
        The names of the functions this call installed.
    """
    installed: list[str] = []
    for function in functions:
        if not _needs_install(function, await conn.fetchrow(SELECT_FUNCTION_RECORD, function.name)):
            continue
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
            if not _needs_install(function, await conn.fetchrow(SELECT_FUNCTION_RECORD, function.name)):
                continue
            await conn.execute(function.definition)
            await conn.execute(RECORD_FUNCTION, function.name, function.sha256, function.version)
            installed.append(function.name)
            logger.info(
                "function=<%s>, version=<%d>, sha256=<%s> | installed sql function",
                function.name,
                function.version,
                function.sha256[:12],
            )
    return installed


async def current_version(conn: Connection) -> int:
    """Return the highest applied migration version, or 0 when none (or no version table) exists."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))
