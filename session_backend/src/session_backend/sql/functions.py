"""SQL functions of the session backend, installed at every start-up (`CREATE OR REPLACE`, see `migrations.py`).

They are built from the shared pieces of `sql/common.py`, so a fix to the write path is a change here, not a new
migration. Errors carry the SQLSTATEs SB404 / SB409 / SB412 / SB423, mapped to domain errors in `errors.py`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .common import (
    AGENT_JSON,
    LIVE,
    LIVE_LEASE,
    SESSION_STORAGE_PREFIX,
    message_json,
    sliding_expiry,
)


@dataclass(frozen=True)
class SqlFunction:
    """A SQL function: its name, the `CREATE OR REPLACE FUNCTION` statement defining it, and its version.

    Bump `version` with every change of `definition`: during a rolling deploy a replica never replaces a function
    recorded at a higher version (an older replica starting late must not undo a newer one's install). A changed
    definition keeps working with the previous version's callers (add, do not remove, until every replica runs it).
    """

    name: str
    definition: str
    version: int = 1

    @property
    def sha256(self) -> str:
        """Digest of the definition: an install is skipped when the database already holds this one."""
        return hashlib.sha256(self.definition.encode()).hexdigest()


# Every message and agent write: applies a list of operations in order and returns one row (status, version, body)
# per operation, or raises with nothing written. `p_lease_owner`, when not NULL, is the lease owner the writer claims
# to be (fencing). Operations: `update_agent` {agent, if_version}, `create_message` / `update_message`
# {agent_id, message}; a `create_message` of identical content at an existing message_id is a retry ('existing');
# `check_incarnation` {incarnation} refuses (SB412) a writer whose copy predates a delete and re-create of the id;
# `record_turn` {turn_id, idempotency_key, result} names the turn the batch commits (see `sql/turns.py`);
# `release_lease` {} ends `p_lease_owner`'s lease with the commit (version 2; version 2 also holds the fenced lease
# row FOR SHARE until the commit; version 3: a `create_message` whose `tracking_id` is held by another row of the agent
# replaces that row in place, strands-agents #4420, every call moves the session's `updated_at`, and
# `set_context_window` {agent_id, window} stores the agent's reduced context window, and the
# expiry is kept past a live lease's end; version 4: an `update_message` deletes the memories extracted from the
# message unless its `forget_memories` is false; version 5: `record_turn` also records the turn's `extraction`, what it
# leaves to extract into memories, see migration 16; version 6: the session row moves once per transaction, and not
# when another transaction in flight holds it, see the end of the function; version 7: an `update_agent` sets the
# agent's `awaiting_input`, a fact of its internal state sent beside it by `embed_content`, since that state may be
# sealed, `db/encryption.py`, migration 17; version 8: the operations are parsed once, into jsonb, where each `->` of
# a `json` value parsed its text again (content stays exact: it is JSON text inside strings), and a message without a
# tracking id skips the in-place replacement; the session row is read once, for both the liveness check and whether
# this transaction has moved it yet). Every
# successful call moves the expiry of a session with a `ttl_seconds` (sliding expiry, see `sql/sessions.py`).
# Version 3 takes `p_ops` as `json` (an overload next to version 2's `jsonb` one, which older replicas keep calling):
# content is copied as the text it was sent as (U+0000 and numbers of any size kept, migration 14), and a retry is
# recognised by equal text (the backend encodes every operation with one codec, `service_kit.jsoncodec`, so equal
# values give equal text; key order counts). Content travels as JSON text in a string field (`Writer` embeds it,
# `db/group_commit.py`): PostgreSQL's json operators refuse to read an object holding a `\u0000` escape, so the
# function reads `message`, `redact_message`, an agent's three states and a turn's `result` with `->>` and casts
# them back to json.
SESSION_BACKEND_WRITE = SqlFunction(
    "session_backend_write",
    version=8,
    definition=rf"""
CREATE OR REPLACE FUNCTION session_backend_write(p_session_id text, p_ops json, p_lease_owner text)
RETURNS TABLE (status text, version bigint, body text)
LANGUAGE plpgsql AS $fn$
DECLARE
    op jsonb;
    msg jsonb;
    v_agent text;
    v_message_id integer;
    v_redact json;
    v_message json;
    v_created timestamptz;
    v_updated timestamptz;
    v_same boolean;
    v_tracking text;
    v_move boolean;
BEGIN
    -- The session is live, and whether this transaction has yet to move its `updated_at` (see the end).
    SELECT s.updated_at IS DISTINCT FROM now() INTO v_move FROM sessions s WHERE s.session_id = p_session_id AND {LIVE};
    IF NOT FOUND THEN
        RAISE EXCEPTION 'session % not found', p_session_id USING ERRCODE = 'SB404';
    END IF;
    -- Fencing: a writer whose lease expired (and may have been taken over) must not write. The lease row stays
    -- locked (FOR SHARE) until this transaction ends, so a take-over waits for these writes instead of racing them.
    IF p_lease_owner IS NOT NULL THEN
        PERFORM 1 FROM session_leases l
        WHERE l.session_id = p_session_id AND l.owner = p_lease_owner AND {LIVE_LEASE}
        FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'the lease on session % is not held by %', p_session_id, p_lease_owner
                USING ERRCODE = 'SB423';
        END IF;
    END IF;
    -- Parsed once into jsonb (version 8): each `->` of a `json` value parses its text again.
    FOR op IN SELECT value FROM jsonb_array_elements(p_ops::jsonb) LOOP
        IF op->>'op' = 'check_incarnation' THEN
            -- A writer whose copy was read from an earlier life of this session id must not write into this one.
            IF NOT EXISTS (SELECT 1 FROM sessions s
                           WHERE s.session_id = p_session_id AND s.incarnation = (op->>'incarnation')::bigint) THEN
                RAISE EXCEPTION 'session % was deleted and re-created since incarnation %', p_session_id,
                    op->>'incarnation' USING ERRCODE = 'SB412';
            END IF;
            status := 'checked';
            version := NULL;
            body := NULL;
            RETURN NEXT;
            CONTINUE;
        ELSIF op->>'op' = 'record_turn' THEN
            -- Last of a turn's batch: loses to a tombstone written by `RESOLVE_TURN` (the writer gave the turn up)
            -- and to an earlier committed turn with the same Idempotency-Key; either way nothing of the batch stays.
            INSERT INTO session_turns (session_id, turn_id, idempotency_key, status, result, extraction)
            VALUES (p_session_id, op->>'turn_id', op->>'idempotency_key', 'committed', (op->>'result')::json,
                    nullif((op->'extraction')::jsonb, 'null'::jsonb))
            ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'turn % of session % was already decided', op->>'turn_id', p_session_id
                    USING ERRCODE = 'SB409';
            END IF;
            status := 'recorded';
            version := NULL;
            body := NULL;
            RETURN NEXT;
            CONTINUE;
        ELSIF op->>'op' = 'set_context_window' THEN
            -- The agent's context window after its conversation manager's reductions (version 3, see
            -- `db/context_window.py`): references to stored messages and the messages it replaced or summarized.
            UPDATE agents a SET context_window = (op->>'window')::json  -- JSON text, as `embed_content` sends it
            WHERE a.session_id = p_session_id AND a.agent_id = op->>'agent_id';
            IF NOT FOUND THEN
                RAISE EXCEPTION 'agent % not found in session %', op->>'agent_id', p_session_id USING ERRCODE = 'SB404';
            END IF;
            status := 'windowed';
            version := NULL;
            body := NULL;
            RETURN NEXT;
            CONTINUE;
        ELSIF op->>'op' = 'release_lease' THEN
            -- Last of a turn's batch: the writer's lease ends with its commit, one round trip fewer per turn.
            IF p_lease_owner IS NULL THEN
                RAISE EXCEPTION 'release_lease needs the lease owner' USING ERRCODE = '22023';
            END IF;
            DELETE FROM session_leases l WHERE l.session_id = p_session_id AND l.owner = p_lease_owner;
            status := 'released';
            version := NULL;
            body := NULL;
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF op->>'op' = 'update_agent' THEN
            msg := op->'agent';
            v_agent := msg->>'agent_id';
        ELSE
            msg := op->'message';
            v_agent := op->>'agent_id';
            v_message_id := (msg->>'message_id')::integer;
            v_tracking := msg->>'tracking_id';  -- copied beside the content by `embed_content`
            v_message := (msg->>'message')::json;
            v_redact := (msg->>'redact_message')::json;
            PERFORM 1 FROM agents a WHERE a.session_id = p_session_id AND a.agent_id = v_agent;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'agent % not found in session %', v_agent, p_session_id USING ERRCODE = 'SB404';
            END IF;
        END IF;
        v_updated := coalesce((msg->>'updated_at')::timestamptz, now());

        CASE op->>'op'
        WHEN 'update_agent' THEN
            -- Compare and set in one statement: a concurrent writer cannot slip between the check and the write.
            UPDATE agents a
            SET state = (msg->>'state')::json, conversation_manager_state = (msg->>'conversation_manager_state')::json,
                internal_state = (msg->>'internal_state')::json, updated_at = v_updated, version = a.version + 1,
                awaiting_input = coalesce((msg->>'awaiting_input')::boolean, a.awaiting_input)
            WHERE a.session_id = p_session_id AND a.agent_id = v_agent
              AND (op->'if_version' IS NULL OR jsonb_typeof(op->'if_version') = 'null'
                   OR a.version = (op->>'if_version')::bigint)
            RETURNING 'updated', a.version, {AGENT_JSON}::text INTO status, version, body;
            IF NOT FOUND THEN
                SELECT a.version INTO version FROM agents a WHERE a.session_id = p_session_id AND a.agent_id = v_agent;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'agent % not found in session %', v_agent, p_session_id USING ERRCODE = 'SB404';
                END IF;
                RAISE EXCEPTION 'agent % is at version %, not %', v_agent, version, op->>'if_version'
                    USING ERRCODE = 'SB412';
            END IF;

        WHEN 'create_message' THEN
            v_created := coalesce((msg->>'created_at')::timestamptz, now());
            -- A message Strands merged into the latest one (same tracking_id, strands-agents #4420) replaces that
            -- row in place; an earlier message with that id (a prompt dict sent again) is one of its own.
            IF v_tracking IS NOT NULL THEN
                UPDATE messages AS m
                SET message = v_message, redact_message = v_redact, updated_at = v_updated,
                    body = {message_json("v_message", "m.message_id", "v_redact", "m.created_at", "v_updated")}::text
                WHERE m.session_id = p_session_id AND m.agent_id = v_agent AND m.tracking_id = v_tracking
                  AND m.message_id = v_message_id - 1
                RETURNING 'replaced', NULL::bigint, m.body INTO status, version, body;
                IF FOUND THEN
                    RETURN NEXT;
                    CONTINUE;
                END IF;
            END IF;
            INSERT INTO messages AS m
                (session_id, agent_id, message_id, message, redact_message, created_at, updated_at, body, tracking_id)
            VALUES (p_session_id, v_agent, v_message_id, v_message, v_redact, v_created, v_updated,
                    {message_json("v_message", "v_message_id", "v_redact", "v_created", "v_updated")}::text,
                    v_tracking)
            ON CONFLICT (session_id, agent_id, message_id) DO NOTHING
            RETURNING 'created', NULL::bigint, m.body INTO status, version, body;
            IF NOT FOUND THEN
                -- A retry is accepted when the content is identical (timestamps ignored).
                SELECT m.message::text = v_message::text
                       AND m.redact_message::text IS NOT DISTINCT FROM v_redact::text, m.body
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

        WHEN 'update_message' THEN
            UPDATE messages AS m
            SET message = v_message, redact_message = v_redact, updated_at = v_updated, tracking_id = v_tracking,
                body = {message_json("v_message", "m.message_id", "v_redact", "m.created_at", "v_updated")}::text
            WHERE m.session_id = p_session_id AND m.agent_id = v_agent AND m.message_id = v_message_id
            RETURNING 'updated', NULL::bigint, m.body INTO status, version, body;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'message % of agent % not found in session %', v_message_id, v_agent, p_session_id
                    USING ERRCODE = 'SB404';
            END IF;
            -- A replaced message (a redaction) takes the memories extracted from it along, unless the op says not
            -- to (version 4; `forget_memories`: false keeps them).
            IF coalesce((op->>'forget_memories')::boolean, true) THEN
                DELETE FROM actor_memories am
                WHERE am.source_session_id = p_session_id AND am.source_agent_id = v_agent
                  AND v_message_id = ANY (am.source_message_ids);
            END IF;

        ELSE
            RAISE EXCEPTION 'unknown operation %', op->>'op' USING ERRCODE = '22023';
        END CASE;
        RETURN NEXT;
    END LOOP;
    -- Sliding expiry: a session with a lifetime lives `ttl_seconds` past its last write (and its live lease).
    -- `updated_at` moves with every committed write (sessions listed by their last turn). Version 6 moves it at most
    -- once per transaction (the later writes of a group commit would write the same values again, each a new row
    -- version with an entry in every index of `sessions`), and a write that finds the row locked by another
    -- transaction in flight leaves the move to that one (SKIP LOCKED): concurrent writers of one session (agents of
    -- a swarm, the group commits of several replicas) no longer queue on the row through each other's commit. The
    -- row then carries the other transaction's start time, at most one transaction's duration before this write's.
    -- Version 8 runs the UPDATE only when the row has not moved in this transaction yet: an UPDATE that changes no row
    -- still opens every index of `sessions` (9 us a write against 2 us for the read above).
    IF NOT v_move THEN
        RETURN;
    END IF;
    UPDATE sessions s
    SET updated_at = now(),
        expires_at = CASE WHEN s.ttl_seconds IS NULL THEN s.expires_at
                          ELSE {sliding_expiry("s.ttl_seconds", "p_session_id")} END
    WHERE s.session_id = (SELECT x.session_id FROM sessions x
                          WHERE x.session_id = p_session_id AND x.updated_at IS DISTINCT FROM now()
                          FOR NO KEY UPDATE SKIP LOCKED);
END
$fn$
""",
)

# Group commit: the writes of several requests in one statement, so one transaction and one WAL flush. Item i is
# `session_backend_write(p_session_ids[i], p_ops[i]::json, p_lease_owners[i])` in a block of its own (a
# subtransaction): a failing item leaves nothing of itself and nothing else undone, and gives its SQLSTATE and message
# as it would alone. `p_ops` is text, parsed in the item's block: a value PostgreSQL refuses (a NUL) fails that item
# only. Rows: (item, status, version, body, NULLs) per operation of a written item (in order), or (item, NULLs,
# error_code, error_message, error_detail, error_hint) once for a failed one; items are numbered from 1.
SESSION_BACKEND_WRITE_MANY = SqlFunction(
    "session_backend_write_many",
    version=2,
    definition=r"""
CREATE OR REPLACE FUNCTION session_backend_write_many(p_session_ids text[], p_ops text[], p_lease_owners text[])
RETURNS TABLE (
    item integer, status text, version bigint, body text,
    error_code text, error_message text, error_detail text, error_hint text)
LANGUAGE plpgsql AS $fn$
DECLARE
    i integer;
    v_status text[];
    v_version bigint[];
    v_body text[];
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_session_ids, 1), 0) LOOP
        BEGIN
            -- Collected before any row is returned: rows of a failed item never reach the result.
            SELECT array_agg(w.status ORDER BY w.n), array_agg(w.version ORDER BY w.n), array_agg(w.body ORDER BY w.n)
            INTO v_status, v_version, v_body
            FROM session_backend_write(p_session_ids[i], p_ops[i]::json, p_lease_owners[i])
                WITH ORDINALITY AS w(status, version, body, n);
        EXCEPTION WHEN OTHERS THEN
            item := i;
            status := NULL;
            version := NULL;
            body := NULL;
            error_code := SQLSTATE;
            error_message := SQLERRM;
            GET STACKED DIAGNOSTICS error_detail = PG_EXCEPTION_DETAIL, error_hint = PG_EXCEPTION_HINT;
            RETURN NEXT;
            CONTINUE;
        END;
        RETURN QUERY SELECT i, u.s, u.v, u.b, NULL::text, NULL::text, NULL::text, NULL::text
            FROM unnest(v_status, v_version, v_body) AS u(s, v, b);
    END LOOP;
END
$fn$
""",
)

# A session's storage objects (its snapshots, under `session/<id>/`) share the life of its row: a trigger deletes them
# in the transaction that deletes the row (a delete, the sweeper, an expired id reused) or inserts it (a new session or
# fork starts empty, whatever was left under its id). The key range is the prefix exactly (keys are COLLATE "C"; '0'
# follows '/'), so the primary key serves it whatever the plan.
SESSION_BACKEND_CLEAR_STORAGE = SqlFunction(
    "session_backend_clear_storage",
    rf"""
CREATE OR REPLACE FUNCTION session_backend_clear_storage() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_prefix text := '{SESSION_STORAGE_PREFIX}'
        || CASE WHEN TG_OP = 'DELETE' THEN OLD.session_id ELSE NEW.session_id END;
BEGIN
    DELETE FROM storage_objects WHERE key >= v_prefix || '/' AND key < v_prefix || '0';
    RETURN NULL;
END
$fn$;
CREATE OR REPLACE TRIGGER sessions_clear_storage AFTER INSERT OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION session_backend_clear_storage();
""",
)

# A write of a session's storage object (a snapshot session's turn saving its snapshot) slides the session's expiry,
# as `session_backend_write` does for the repository's rows: both kinds of session live `ttl_seconds` past their
# last committed turn.
SESSION_BACKEND_STORAGE_WRITTEN = SqlFunction(
    "session_backend_storage_written",
    rf"""
CREATE OR REPLACE FUNCTION session_backend_storage_written() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_session_id text := split_part(NEW.key, '/', 2);
BEGIN
    UPDATE sessions s SET expires_at = {sliding_expiry("s.ttl_seconds", "v_session_id")}
    WHERE s.session_id = v_session_id AND s.ttl_seconds IS NOT NULL AND {LIVE};
    RETURN NULL;
END
$fn$;
CREATE OR REPLACE TRIGGER storage_objects_slide_session AFTER INSERT OR UPDATE ON storage_objects
    FOR EACH ROW WHEN (starts_with(NEW.key, '{SESSION_STORAGE_PREFIX}'))
    EXECUTE FUNCTION session_backend_storage_written();
""",
)

FUNCTIONS: tuple[SqlFunction, ...] = (
    SESSION_BACKEND_WRITE,
    SESSION_BACKEND_WRITE_MANY,
    SESSION_BACKEND_CLEAR_STORAGE,
    SESSION_BACKEND_STORAGE_WRITTEN,
)
"""Every function the backend installs, in install order."""

WRITE = """
SELECT status, version, body FROM session_backend_write($1, $2::json, $3::text)
"""

# The operations as JSON text (the group commit encodes them once, for either statement).
WRITE_TEXT = """
SELECT status, version, body FROM session_backend_write($1, $2::text::json, $3::text)
"""

WRITE_MANY = """
SELECT item, status, version, body, error_code, error_message, error_detail, error_hint
FROM session_backend_write_many($1::text[], $2::text[], $3::text[])
"""
