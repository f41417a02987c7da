"""The schema's migrations: an append-only list of SQL, applied in order by `db/migrations.py`.

A migration's list index (from 1) is its version; a shipped entry is never edited, a fix is a new one. This module
holds nothing else, so nobody edits it for another reason.
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
    # 2: shipped the first `session_backend_write`. The function now lives in sql/functions.py and
    # `install_functions` creates or replaces it after the migrations at every start-up, so this step has nothing
    # left to do (its number stays taken: databases that applied it keep their record).
    "SELECT 1",
    # 3: which version of each SQL function is installed, so replicas starting at once skip an identical install.
    """
    CREATE TABLE IF NOT EXISTS schema_functions (
        name         text PRIMARY KEY,
        sha256       text NOT NULL,
        installed_at timestamptz NOT NULL DEFAULT now()
    );
    """,
    # 4: agent profiles (see sql/profiles.py).
    """
    CREATE TABLE IF NOT EXISTS agent_profiles (
        agent_id      text PRIMARY KEY,
        name          text NOT NULL,
        system_prompt text,
        model_config  jsonb NOT NULL DEFAULT '{}'::jsonb,
        tools         text[] NOT NULL DEFAULT '{}',
        created_at    timestamptz NOT NULL DEFAULT now(),
        updated_at    timestamptz NOT NULL DEFAULT now()
    );
    """,
    # 5: long-term memories per actor, full-text searchable (see sql/memories.py).
    """
    CREATE EXTENSION IF NOT EXISTS btree_gin;
    CREATE TABLE IF NOT EXISTS actor_memories (
        actor_id   text NOT NULL,
        memory_id  uuid NOT NULL DEFAULT gen_random_uuid(),
        content    text NOT NULL,
        metadata   jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        search     tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
        PRIMARY KEY (actor_id, memory_id)
    );
    CREATE INDEX IF NOT EXISTS actor_memories_search_idx ON actor_memories USING gin (actor_id, search);
    CREATE INDEX IF NOT EXISTS actor_memories_created_idx ON actor_memories (actor_id, created_at DESC, memory_id DESC);
    CREATE UNIQUE INDEX IF NOT EXISTS actor_memories_content_idx ON actor_memories (actor_id, md5(content));
    """,
    # 6: Strands `Storage` objects (bytes under keys) with a full-text index of their text.
    """
    CREATE TABLE IF NOT EXISTS storage_objects (
        key         text COLLATE "C" PRIMARY KEY,
        value       bytea NOT NULL,
        -- Full-text vector of the value's text (decoded leniently by the service, so any bytes can be written).
        content_tsv tsvector NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX IF NOT EXISTS storage_objects_content_tsv_idx ON storage_objects USING gin (content_tsv);
    -- Values are often multi-MiB snapshots: lz4 compresses them several times faster than the default pglz (bench row
    -- "snapshot save"). A server built without lz4 keeps pglz.
    DO $$
    BEGIN
        ALTER TABLE storage_objects ALTER COLUMN value SET COMPRESSION lz4;
    EXCEPTION WHEN feature_not_supported THEN
        RAISE NOTICE 'lz4 not available: storage values keep the default compression';
    END
    $$;
    """,
    # 7: session incarnations and turn records (Idempotency-Key, outcome of a turn whose answer was lost).
    """
    CREATE SEQUENCE IF NOT EXISTS session_incarnation_seq;
    ALTER TABLE sessions
        ADD COLUMN IF NOT EXISTS incarnation bigint NOT NULL DEFAULT nextval('session_incarnation_seq');

    CREATE TABLE IF NOT EXISTS session_turns (
        session_id      text NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
        turn_id         text NOT NULL,
        idempotency_key text,
        status          text NOT NULL CHECK (status IN ('committed', 'aborted')),
        result          jsonb,
        created_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (session_id, turn_id)
    );
    CREATE UNIQUE INDEX IF NOT EXISTS session_turns_idempotency_idx
        ON session_turns (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL AND status = 'committed';
    CREATE INDEX IF NOT EXISTS session_turns_created_idx ON session_turns (created_at);
    """,
    # 8: sliding expiry: each session's lifetime, counted from its last write.
    """
    ALTER TABLE sessions ADD COLUMN IF NOT EXISTS ttl_seconds bigint;
    """,
    # 9: the active agent of a session (turn routing shared by every agent-service replica).
    """
    CREATE TABLE IF NOT EXISTS session_active_agents (
        session_id text PRIMARY KEY REFERENCES sessions (session_id) ON DELETE CASCADE,
        agent_id   text NOT NULL REFERENCES agent_profiles (agent_id) ON DELETE CASCADE,
        expires_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX IF NOT EXISTS session_active_agents_agent_idx ON session_active_agents (agent_id);
    CREATE INDEX IF NOT EXISTS session_active_agents_expires_idx
        ON session_active_agents (expires_at) WHERE expires_at IS NOT NULL;
    """,
    # 10: each installed SQL function's version, so a rolling deploy never installs an older one over a newer one.
    "ALTER TABLE schema_functions ADD COLUMN IF NOT EXISTS version integer NOT NULL DEFAULT 0",
    # 11: profiles have owners (the actor that created one; NULL: created without access control) and a `shared` flag.
    """
    ALTER TABLE agent_profiles
        ADD COLUMN IF NOT EXISTS owner_actor_id text,
        ADD COLUMN IF NOT EXISTS shared boolean NOT NULL DEFAULT false;
    CREATE INDEX IF NOT EXISTS agent_profiles_owner_idx ON agent_profiles (owner_actor_id, agent_id)
        WHERE owner_actor_id IS NOT NULL;
    """,
    # 12: a receipt per erasure of an actor (DELETE /v1/actors/{actor_id}): counts and time, no content; the actor
    # only as a sha256 digest, so an auditor who knows the id can find its receipt and the table names nobody.
    """
    CREATE TABLE IF NOT EXISTS erasures (
        erase_id     uuid PRIMARY KEY,
        actor_digest text NOT NULL,
        counts       jsonb NOT NULL,
        erased_at    timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX IF NOT EXISTS erasures_actor_idx ON erasures (actor_digest, erased_at);
    """,
    # 13: each message's Strands `tracking_id` (one row per tracking id: a message merged in place by Strands is
    # replaced in place, strands-agents #4420), sessions listed by their last committed turn, and each agent's
    # context window after its conversation manager's reductions (#4270, #4027; see `db/context_window.py`).
    """
    ALTER TABLE agents ADD COLUMN IF NOT EXISTS context_window jsonb;
    ALTER TABLE messages ADD COLUMN IF NOT EXISTS tracking_id text;
    UPDATE messages SET tracking_id = message->>'tracking_id'
    WHERE tracking_id IS NULL AND message->>'tracking_id' IS NOT NULL;
    CREATE INDEX IF NOT EXISTS messages_tracking_idx
        ON messages (session_id, agent_id, tracking_id) WHERE tracking_id IS NOT NULL;
    CREATE INDEX IF NOT EXISTS sessions_updated_idx ON sessions (updated_at DESC, session_id DESC);
    CREATE INDEX IF NOT EXISTS sessions_actor_updated_idx
        ON sessions (actor_id, updated_at DESC, session_id DESC) WHERE actor_id IS NOT NULL;
    """,
    # 14: conversation content as `json`, which keeps the text exactly: strings with U+0000 (jsonb refuses them),
    # numbers as written (jsonb turns 1e+25 into an integer's digits). Session metadata stays jsonb (it is filtered
    # and merged in SQL, and its 64 KiB is validated without NULs); see README, "Schema".
    """
    ALTER TABLE messages
        ALTER COLUMN message TYPE json USING message::json,
        ALTER COLUMN redact_message TYPE json USING redact_message::json;
    ALTER TABLE agents
        ALTER COLUMN state DROP DEFAULT,
        ALTER COLUMN conversation_manager_state DROP DEFAULT,
        ALTER COLUMN internal_state DROP DEFAULT,
        ALTER COLUMN state TYPE json USING state::json,
        ALTER COLUMN conversation_manager_state TYPE json USING conversation_manager_state::json,
        ALTER COLUMN internal_state TYPE json USING internal_state::json,
        ALTER COLUMN state SET DEFAULT '{}'::json,
        ALTER COLUMN conversation_manager_state SET DEFAULT '{}'::json,
        ALTER COLUMN internal_state SET DEFAULT '{}'::json;
    ALTER TABLE multi_agents ALTER COLUMN state TYPE json USING state::json;
    ALTER TABLE session_turns ALTER COLUMN result TYPE json USING result::json;
    ALTER TABLE agents ALTER COLUMN context_window TYPE json USING context_window::json;
    """,
    # 15: provenance: the (session, agent) a memory was extracted from, and its message ids. Vectors (384 wide, the
    # embedder's `DIMENSIONS`): only where the server offers pgvector (Debian's PostgreSQL 15 does not; the embedded
    # PostgreSQL 18 does); without the column, search is full text and /ready says so. A role not allowed to create
    # the extension gets full text too.
    """
    ALTER TABLE actor_memories
        ADD COLUMN IF NOT EXISTS source_session_id  text,
        ADD COLUMN IF NOT EXISTS source_agent_id    text,
        ADD COLUMN IF NOT EXISTS source_message_ids integer[];
    DO $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'actor_memories_source_fk') THEN
            ALTER TABLE actor_memories
                ADD CONSTRAINT actor_memories_source_fk FOREIGN KEY (source_session_id, source_agent_id)
                    REFERENCES agents (session_id, agent_id) ON DELETE SET NULL,
                ADD CONSTRAINT actor_memories_source_check
                    CHECK ((source_session_id IS NULL) = (source_agent_id IS NULL));
        END IF;
    END
    $$;
    CREATE INDEX IF NOT EXISTS actor_memories_source_idx ON actor_memories (source_session_id, source_agent_id)
        WHERE source_session_id IS NOT NULL;
    DO $$
    BEGIN
        IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
            CREATE EXTENSION IF NOT EXISTS vector;
            ALTER TABLE actor_memories ADD COLUMN IF NOT EXISTS embedding vector(384);
            CREATE INDEX IF NOT EXISTS actor_memories_embedding_idx
                ON actor_memories USING hnsw (embedding vector_cosine_ops);
            -- Memories stored before vectors (or by a writer without an embedder), for the start-up backfill.
            CREATE INDEX IF NOT EXISTS actor_memories_unembedded_idx
                ON actor_memories (actor_id) WHERE embedding IS NULL;
        END IF;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE WARNING 'pgvector not enabled (%): memory search stays full text', SQLERRM;
    END
    $$;
    """,
    # 16: memory extraction progress stored with the turn: what a committed turn leaves to extract (`extraction`:
    # actor, agent, message ids) until its memories are stored (`extracted_at`, set in the memories' transaction), so
    # a turn whose agent process died before extraction finished is finished by a replay or the session's next turn.
    """
    ALTER TABLE session_turns
        ADD COLUMN IF NOT EXISTS extraction   jsonb,
        ADD COLUMN IF NOT EXISTS extracted_at timestamptz;
    CREATE INDEX IF NOT EXISTS session_turns_extraction_pending_idx ON session_turns (session_id, created_at)
        WHERE extraction IS NOT NULL AND extracted_at IS NULL;
    """,
    # 17: encryption at rest (see `db/encryption.py`): one data key per scope (an actor, or a session without one),
    # wrapped by the configured key. Facts SQL used to read inside content, kept beside it now that content may be
    # sealed: an agent's pending interrupt (`awaiting_input`, the session list's filter), and a memory's full-text
    # vector (no longer generated from `content`: the store sets it from the plaintext, or leaves it NULL).
    r"""
    CREATE TABLE IF NOT EXISTS data_keys (
        key_id          text PRIMARY KEY,
        scope           text NOT NULL UNIQUE,
        wrapping_key_id text NOT NULL,
        wrapped         bytea NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now(),
        rotated_at      timestamptz
    );
    CREATE INDEX IF NOT EXISTS data_keys_wrapping_idx ON data_keys (wrapping_key_id);
    ALTER TABLE agents ADD COLUMN IF NOT EXISTS awaiting_input boolean NOT NULL DEFAULT false;
    UPDATE agents SET awaiting_input = true
    WHERE CASE WHEN internal_state::text NOT LIKE '%interrupt_state%' OR internal_state::text LIKE '%\\u0000%'
               THEN false
               ELSE (internal_state->'interrupt_state'->>'activated') = 'true' END;
    ALTER TABLE actor_memories ALTER COLUMN search DROP EXPRESSION IF EXISTS;
    """,
    # 18: sessions listed by their last write through an index on its second (`updated_second`), not on `updated_at`:
    # the write moving `updated_at` is then a HOT update (no index entries; the old row version pruned in its page) for
    # every write after the first in that second; the list sorts the sessions of one second (incremental sort). Fill
    # factor 90 leaves room in each page for those row versions. The column rewrites the table once.
    """
    ALTER TABLE sessions SET (fillfactor = 90);
    ALTER TABLE sessions ADD COLUMN IF NOT EXISTS updated_second timestamp
        GENERATED ALWAYS AS (date_trunc('second', updated_at AT TIME ZONE 'UTC')) STORED;
    CREATE INDEX IF NOT EXISTS sessions_updated_second_idx ON sessions (updated_second DESC);
    CREATE INDEX IF NOT EXISTS sessions_actor_updated_second_idx
        ON sessions (actor_id, updated_second DESC) WHERE actor_id IS NOT NULL;
    DROP INDEX IF EXISTS sessions_updated_idx;
    DROP INDEX IF EXISTS sessions_actor_updated_idx;
    """,
]
