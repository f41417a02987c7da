"""Append-only schema migrations: the list index is the version; a shipped entry is never edited, a fix is a new one."""

from __future__ import annotations

import logging

import asyncpg
from asyncpg.pool import PoolConnectionProxy

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

MIGRATIONS: list[str] = [
    # 1: sessions → agents → messages, multi-agent state. Every primary key leads with session_id so the schema can
    # be distributed by session_id (e.g. Citus) without change.
    """
    CREATE TABLE IF NOT EXISTS sessions (
        session_id   text PRIMARY KEY,
        session_type text NOT NULL DEFAULT 'AGENT',
        actor_id     text,
        metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at   timestamptz NOT NULL DEFAULT now(),
        updated_at   timestamptz NOT NULL DEFAULT now(),
        expires_at   timestamptz
    );
    CREATE INDEX IF NOT EXISTS sessions_created_idx ON sessions (created_at DESC, session_id DESC);
    CREATE INDEX IF NOT EXISTS sessions_actor_created_idx
        ON sessions (actor_id, created_at DESC, session_id DESC) WHERE actor_id IS NOT NULL;
    CREATE INDEX IF NOT EXISTS sessions_expires_idx ON sessions (expires_at) WHERE expires_at IS NOT NULL;

    CREATE TABLE IF NOT EXISTS agents (
        session_id                 text NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
        agent_id                   text NOT NULL,
        state                      jsonb NOT NULL DEFAULT '{}'::jsonb,
        conversation_manager_state jsonb NOT NULL DEFAULT '{}'::jsonb,
        internal_state             jsonb NOT NULL DEFAULT '{}'::jsonb,
        version                    bigint NOT NULL DEFAULT 1,
        created_at                 timestamptz NOT NULL DEFAULT now(),
        updated_at                 timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (session_id, agent_id)
    );

    CREATE TABLE IF NOT EXISTS messages (
        session_id     text NOT NULL,
        agent_id       text NOT NULL,
        message_id     integer NOT NULL CHECK (message_id >= 0),
        message        jsonb NOT NULL,
        redact_message jsonb,
        created_at     timestamptz NOT NULL DEFAULT now(),
        updated_at     timestamptz NOT NULL DEFAULT now(),
        -- The row as the API returns it (SessionMessage.to_dict() JSON), rendered once when written: a restore
        -- of thousands of messages then concatenates text instead of re-serialising jsonb row by row.
        body           text NOT NULL,
        PRIMARY KEY (session_id, agent_id, message_id),
        FOREIGN KEY (session_id, agent_id) REFERENCES agents (session_id, agent_id) ON DELETE CASCADE
    );

    CREATE TABLE IF NOT EXISTS multi_agents (
        session_id     text NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
        multi_agent_id text NOT NULL,
        state          jsonb NOT NULL,
        created_at     timestamptz NOT NULL DEFAULT now(),
        updated_at     timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (session_id, multi_agent_id)
    );
    """,
]


async def apply_migrations(conn: Connection) -> list[int]:
    """Apply every migration not yet recorded in `schema_migrations`, each in its own transaction.

    Safe when several replicas start at once: each migration runs under a transaction-scoped advisory lock and
    re-checks the version table after taking it.

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
    return applied


async def current_version(conn: Connection) -> int:
    """Return the highest applied migration version, or 0 when none (or no version table) exists."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))
