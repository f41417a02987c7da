"""The migration runner: fresh database, re-run (no-op), and replicas starting at once."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest

from session_backend.db.migrations import apply_migrations, current_version, install_functions
from session_backend.sql.functions import SESSION_BACKEND_WRITE, SqlFunction
from session_backend.sql.migrations import MIGRATIONS

pytestmark = pytest.mark.integration


async def _fresh(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS messages, agents, multi_agents, sessions, session_leases, schema_migrations,"
            " schema_functions, storage_objects CASCADE;"
            "DROP TABLE IF EXISTS agent_profiles, actor_memories CASCADE"
        )
    finally:
        await conn.close()


def test_fresh_then_rerun_is_noop(database_url: str) -> None:
    async def run() -> None:
        await _fresh(database_url)
        conn = await asyncpg.connect(database_url)
        try:
            assert await current_version(conn) == 0
            assert await apply_migrations(conn) == list(range(1, len(MIGRATIONS) + 1))
            assert await current_version(conn) == len(MIGRATIONS)
            assert await apply_migrations(conn) == []
            tables = {
                r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            }
            assert {"sessions", "agents", "messages", "multi_agents", "schema_migrations"} <= tables
            # every primary key of the session model leads with session_id (storage objects are keyed by their key,
            # distributable by it)
            keys = await conn.fetch(
                """SELECT c.conrelid::regclass::text AS t, a.attname AS first
                   FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
                   JOIN pg_namespace n ON n.oid = c.connamespace
                   WHERE c.contype = 'p' AND n.nspname = 'public'
                     AND c.conrelid::regclass::text
                         NOT IN ('schema_migrations', 'schema_functions', 'storage_objects')"""
            )
            # ... except the per-actor memories (distributed by actor), the agent profiles (a reference table) and the
            # erasure receipts (audit rows of no session) and the data keys of encryption at rest (one per actor or
            # session, a small reference table)
            leading = {
                "actor_memories": "actor_id",
                "agent_profiles": "agent_id",
                "erasures": "erase_id",
                "data_keys": "key_id",
            }
            assert keys and all(k["first"] == leading.get(k["t"], "session_id") for k in keys)
        finally:
            await conn.close()

    asyncio.run(run())


def test_concurrent_replicas_apply_each_migration_once(database_url: str) -> None:
    async def replica() -> list[int]:
        conn = await asyncpg.connect(database_url)
        try:
            return await apply_migrations(conn)
        finally:
            await conn.close()

    async def run() -> list[list[int]]:
        await _fresh(database_url)
        return await asyncio.gather(*(replica() for _ in range(4)))

    results = asyncio.run(run())
    applied = sorted(v for r in results for v in r)
    assert applied == list(range(1, len(MIGRATIONS) + 1))


def test_functions_install_when_changed_and_skip_when_identical(database_url: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await apply_migrations(conn)
            assert await install_functions(conn) == []
            changed = dataclasses.replace(SESSION_BACKEND_WRITE, definition=SESSION_BACKEND_WRITE.definition + "\n")
            assert await install_functions(conn, (changed,)) == [SESSION_BACKEND_WRITE.name]
            assert await install_functions(conn) == [SESSION_BACKEND_WRITE.name]
            source = await conn.fetchval("SELECT prosrc FROM pg_proc WHERE proname = $1", SESSION_BACKEND_WRITE.name)
            # the live definition, not migration 2's first version
            assert source in SESSION_BACKEND_WRITE.definition and "Compare and set" in source
        finally:
            await conn.close()

    asyncio.run(run())


def test_functions_are_never_downgraded_by_an_older_replica(database_url: str) -> None:
    """Rolling deploy: a newer replica installed version 2; an older replica (version 1) starting later keeps it."""

    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await apply_migrations(conn)
            base = SESSION_BACKEND_WRITE
            newer_definition = base.definition.replace("AS $fn$", "AS $fn$\n-- newer", 1)
            newer = SqlFunction(base.name, newer_definition, version=base.version + 1)
            assert await install_functions(conn, (newer,)) == [base.name]
            assert await install_functions(conn, (base,)) == []  # the older replica starts: nothing replaced
            source = await conn.fetchval("SELECT prosrc FROM pg_proc WHERE proname = $1", base.name)
            assert "-- newer" in source
            record = await conn.fetchrow("SELECT version, sha256 FROM schema_functions WHERE name = $1", base.name)
            assert record is not None and (record["version"], record["sha256"]) == (newer.version, newer.sha256)
            # Back to the shipped definition for the other tests of this module.
            await conn.execute("UPDATE schema_functions SET version = 0 WHERE name = $1", base.name)
            assert await install_functions(conn) == [base.name]
            source = await conn.fetchval("SELECT prosrc FROM pg_proc WHERE proname = $1", base.name)
            assert "-- newer" not in source
        finally:
            await conn.close()

    asyncio.run(run())
