"""The schema at start-up: append-only migrations, then the SQL functions of `sql/functions.py`.

A migration's list index is its version; a shipped entry is never edited, a fix is a new one. Functions are
reinstalled whenever their definition changes.
"""

from __future__ import annotations

import logging

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from .sql.active_agents import CREATE_ACTIVE_AGENTS
from .sql.functions import FUNCTIONS, SqlFunction
from .sql.memories import CREATE_ACTOR_MEMORIES
from .sql.profiles import CREATE_AGENT_PROFILES
from .sql.sessions import ADD_SESSION_TTL
from .sql.storage import CREATE_STORAGE_OBJECTS
from .sql.turns import CREATE_TURNS

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

    -- One writer per session across replicas. No foreign key: the first turn of a new session takes the lease
    -- before the session row exists. Expired rows are taken over by the next writer and swept. UNLOGGED: a lease
    -- is soft state, so taking one costs no WAL flush; after a crash the table is empty, every fenced write of a
    -- writer that held a lease is refused, and it simply takes a new one.
    CREATE UNLOGGED TABLE IF NOT EXISTS session_leases (
        session_id text PRIMARY KEY,
        owner      text NOT NULL,
        locked_at  timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL
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
    # 2: every write of messages and agents goes through one function, so a turn's batch is one round trip and
    # the single-row routes share its semantics. Kept as shipped; the function is now defined in sql/functions.py
    # and replaced by `install_functions` at every start-up, so this first version never outlives a start-up.
    r"""
    CREATE OR REPLACE FUNCTION session_backend_write(p_session_id text, p_ops jsonb, p_lease_owner text)
    RETURNS TABLE (status text, version bigint, body text)
    LANGUAGE plpgsql AS $fn$
    DECLARE
        op jsonb;
        msg jsonb;
        v_agent text;
        v_message_id integer;
        v_redact jsonb;
        v_created timestamptz;
        v_updated timestamptz;
        v_same boolean;
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = p_session_id
                       AND (s.expires_at IS NULL OR s.expires_at > now())) THEN
            RAISE EXCEPTION 'session % not found', p_session_id USING ERRCODE = 'SB404';
        END IF;
        -- Fencing: a writer whose lease expired (and may have been taken over) must not write.
        IF p_lease_owner IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM session_leases l
                WHERE l.session_id = p_session_id AND l.owner = p_lease_owner AND l.expires_at > now()) THEN
            RAISE EXCEPTION 'the lease on session % is not held by %', p_session_id, p_lease_owner
                USING ERRCODE = 'SB423';
        END IF;
        FOR op IN SELECT value FROM jsonb_array_elements(p_ops) LOOP
            IF op->>'op' = 'update_agent' THEN
                msg := op->'agent';
                v_agent := msg->>'agent_id';
                v_updated := coalesce((msg->>'updated_at')::timestamptz, now());
                UPDATE agents a
                SET state = msg->'state', conversation_manager_state = msg->'conversation_manager_state',
                    internal_state = msg->'internal_state', updated_at = v_updated, version = a.version + 1
                WHERE a.session_id = p_session_id AND a.agent_id = v_agent
                  AND (op->'if_version' IS NULL OR jsonb_typeof(op->'if_version') = 'null'
                       OR a.version = (op->>'if_version')::bigint)
                RETURNING 'updated', a.version, json_build_object(
                    'agent_id', a.agent_id, 'state', a.state,
                    'conversation_manager_state', a.conversation_manager_state,
                    '_internal_state', a.internal_state,
                    'created_at', to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
                    'updated_at', to_char(a.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
                    'version', a.version)::text
                INTO status, version, body;
                IF NOT FOUND THEN
                    SELECT a.version INTO version FROM agents a
                    WHERE a.session_id = p_session_id AND a.agent_id = v_agent;
                    IF NOT FOUND THEN
                        RAISE EXCEPTION 'agent % not found in session %', v_agent, p_session_id
                            USING ERRCODE = 'SB404';
                    END IF;
                    RAISE EXCEPTION 'agent % is at version %, not %', v_agent, version, op->>'if_version'
                        USING ERRCODE = 'SB412';
                END IF;
                RETURN NEXT;
                CONTINUE;
            END IF;

            v_agent := op->>'agent_id';
            msg := op->'message';
            v_message_id := (msg->>'message_id')::integer;
            v_redact := CASE WHEN jsonb_typeof(msg->'redact_message') = 'object' THEN msg->'redact_message' END;
            v_updated := coalesce((msg->>'updated_at')::timestamptz, now());
            PERFORM 1 FROM agents a WHERE a.session_id = p_session_id AND a.agent_id = v_agent;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'agent % not found in session %', v_agent, p_session_id USING ERRCODE = 'SB404';
            END IF;

            IF op->>'op' = 'create_message' THEN
                v_created := coalesce((msg->>'created_at')::timestamptz, now());
                INSERT INTO messages AS m
                    (session_id, agent_id, message_id, message, redact_message, created_at, updated_at, body)
                VALUES (p_session_id, v_agent, v_message_id, msg->'message', v_redact, v_created, v_updated,
                        json_build_object(
                            'message', msg->'message', 'message_id', v_message_id, 'redact_message', v_redact,
                            'created_at', to_char(v_created AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
                            'updated_at', to_char(v_updated AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
                        )::text)
                ON CONFLICT (session_id, agent_id, message_id) DO NOTHING
                RETURNING 'created', NULL::bigint, m.body INTO status, version, body;
                IF NOT FOUND THEN
                    -- A retry is accepted when the content is identical (timestamps ignored).
                    SELECT m.message = msg->'message' AND m.redact_message IS NOT DISTINCT FROM v_redact, m.body
                    INTO v_same, body
                    FROM messages m
                    WHERE m.session_id = p_session_id AND m.agent_id = v_agent AND m.message_id = v_message_id;
                    IF NOT v_same THEN
                        RAISE EXCEPTION 'message_id % of agent % in session % already holds a different message',
                            v_message_id, v_agent, p_session_id USING ERRCODE = 'SB409';
                    END IF;
                    status := 'existing';
                    version := NULL;
                END IF;
            ELSIF op->>'op' = 'update_message' THEN
                UPDATE messages AS m
                SET message = msg->'message', redact_message = v_redact, updated_at = v_updated,
                    body = json_build_object(
                        'message', msg->'message', 'message_id', m.message_id, 'redact_message', v_redact,
                        'created_at', to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
                        'updated_at', to_char(v_updated AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
                    )::text
                WHERE m.session_id = p_session_id AND m.agent_id = v_agent AND m.message_id = v_message_id
                RETURNING 'updated', NULL::bigint, m.body INTO status, version, body;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'message % of agent % not found in session %', v_message_id, v_agent,
                        p_session_id USING ERRCODE = 'SB404';
                END IF;
            ELSE
                RAISE EXCEPTION 'unknown operation %', op->>'op' USING ERRCODE = '22023';
            END IF;
            RETURN NEXT;
        END LOOP;
    END
    $fn$;
    """,
    # 3: which version of each SQL function is installed, so replicas starting at once skip an identical install.
    """
    CREATE TABLE IF NOT EXISTS schema_functions (
        name         text PRIMARY KEY,
        sha256       text NOT NULL,
        installed_at timestamptz NOT NULL DEFAULT now()
    );
    """,
    # 4: agent profiles (see sql/profiles.py).
    CREATE_AGENT_PROFILES,
    # 5: long-term memories per actor, full-text searchable (see sql/memories.py).
    CREATE_ACTOR_MEMORIES,
    # 6: Strands `Storage` objects (bytes under keys) with a full-text index of their text.
    CREATE_STORAGE_OBJECTS,
    # 7: session incarnations and turn records (Idempotency-Key, outcome of a turn whose answer was lost).
    CREATE_TURNS,
    # 8: sliding expiry: each session's lifetime, counted from its last write.
    ADD_SESSION_TTL,
    # 9: the active agent of a session (turn routing shared by every agent-service replica).
    CREATE_ACTIVE_AGENTS,
]

SELECT_FUNCTION_SHA256 = "SELECT sha256 FROM schema_functions WHERE name = $1"

RECORD_FUNCTION = """
INSERT INTO schema_functions (name, sha256) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET sha256 = EXCLUDED.sha256, installed_at = now()
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


async def install_functions(conn: Connection, functions: tuple[SqlFunction, ...] = FUNCTIONS) -> list[str]:
    """Create or replace every SQL function whose recorded sha256 differs from its definition's.

    Each install runs in its own transaction under the migration lock, after re-checking the record, so replicas
    starting at once install a changed function once and skip an identical one.

    Args:
        conn: an open connection on a database migrated to the latest version.
        functions: the functions to install (default: all of `sql/functions.py`).

    Returns:
        The names of the functions this call installed.
    """
    installed: list[str] = []
    for function in functions:
        if await conn.fetchval(SELECT_FUNCTION_SHA256, function.name) == function.sha256:
            continue
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
            if await conn.fetchval(SELECT_FUNCTION_SHA256, function.name) == function.sha256:
                continue
            await conn.execute(function.definition)
            await conn.execute(RECORD_FUNCTION, function.name, function.sha256)
            installed.append(function.name)
            logger.info("function=<%s>, sha256=<%s> | installed sql function", function.name, function.sha256[:12])
    return installed


async def current_version(conn: Connection) -> int:
    """Return the highest applied migration version, or 0 when none (or no version table) exists."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))
