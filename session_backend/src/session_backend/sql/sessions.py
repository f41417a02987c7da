"""SQL for the sessions aggregate. Reads return JSON text built by PostgreSQL, passed to clients unchanged."""

from .common import LIVE, LIVE_LEASE, SESSION_JSON, sliding_expiry

INSERT_SESSION = f"""
INSERT INTO sessions AS s
    (session_id, session_type, actor_id, metadata, created_at, updated_at, expires_at, ttl_seconds)
VALUES ($1, $2, $3, $4, coalesce($5, now()), coalesce($6, now()),
        CASE WHEN $7::bigint IS NULL THEN NULL ELSE {sliding_expiry("$7::bigint", "$1")} END, $7::bigint)
ON CONFLICT (session_id) DO NOTHING
RETURNING {SESSION_JSON}::text
"""

# An expired id may be reused: its old rows go first (cascade), in the same transaction as the insert.
DELETE_EXPIRED_SESSION = """
DELETE FROM sessions WHERE session_id = $1 AND expires_at IS NOT NULL AND expires_at <= now()
"""

SELECT_SESSION = f"""
SELECT {SESSION_JSON}::text FROM sessions s WHERE s.session_id = $1 AND {LIVE}
"""

# An agent of the session (`s`) holds a pending interrupt: it waits for a human's answer. Kept beside the (possibly
# sealed) internal state by every agent write (`awaiting_input`, migration 17).
AWAITING_INPUT = """EXISTS (SELECT 1 FROM agents a WHERE a.session_id = s.session_id AND a.awaiting_input)"""


def _list_sessions(order: str) -> str:
    """Keyset pagination, newest first by `order` (a column of `SESSION_ORDERS`, never user text).

    `(order, session_id)` strictly below the cursor ($2, $3). Filters: actor ($1), pending interrupt ($6: true,
    false or NULL for either), metadata ($7 keys, $8 values: each key's value, as JSON text with strings unquoted,
    equals the value). A page ends at $4 rows or once the rows before it hold $5 bytes of JSON, whichever comes first
    (at least one row); `fetched` tells whether rows were left out, so the caller knows there is a next page.
    `updated_at` is read through its second's index (`updated_second`, migration 18), then sorted within the second.
    """
    leading, bound = "", ""
    if order == "updated_at":
        leading = "s.updated_second DESC, "
        bound = "s.updated_second <= date_trunc('second', $2::timestamptz AT TIME ZONE 'UTC') AND "
    return f"""
SELECT sort_key, session_id, body, fetched FROM (
    SELECT page.*, count(*) OVER () AS fetched,
           sum(octet_length(page.body)) OVER (ORDER BY page.sort_key DESC, page.session_id DESC) AS upto
    FROM (
        SELECT s.{order} AS sort_key, s.session_id, {SESSION_JSON}::text AS body
        FROM sessions s
        WHERE {LIVE}
          AND ($1::text IS NULL OR s.actor_id = $1)
          AND ($2::timestamptz IS NULL OR ({bound}(s.{order}, s.session_id) < ($2, $3)))
          AND ($6::boolean IS NULL OR $6 = {AWAITING_INPUT})
          AND NOT EXISTS (SELECT 1 FROM unnest($7::text[], $8::text[]) AS f(key, value)
                          WHERE s.metadata->>f.key IS DISTINCT FROM f.value)
        ORDER BY {leading}s.{order} DESC, s.session_id DESC
        LIMIT $4
    ) page
) sized
WHERE sized.upto - octet_length(sized.body) < $5
ORDER BY sort_key DESC, session_id DESC
"""


SESSION_ORDERS = ("created_at", "updated_at")
LIST_SESSIONS = {order: _list_sessions(order) for order in SESSION_ORDERS}
"""The page query per order: newest created first, or most recently written (every committed turn) first."""

DELETE_SESSION = f"""
DELETE FROM sessions s WHERE s.session_id = $1 AND {LIVE} RETURNING 1
"""

SESSION_IS_LIVE = f"""
SELECT 1 FROM sessions s WHERE s.session_id = $1 AND {LIVE}
"""

# One batch of the sweeper; SKIP LOCKED lets several replicas sweep at once without waiting on each other. A session
# under a live lease is left alone (a turn is running: taking the lease moved its expiry, see `sql/leases.py`).
SWEEP_EXPIRED = f"""
DELETE FROM sessions WHERE session_id IN (
    SELECT s.session_id FROM sessions s
    WHERE s.expires_at IS NOT NULL AND s.expires_at <= now()
      AND NOT EXISTS (SELECT 1 FROM session_leases l WHERE l.session_id = s.session_id AND {LIVE_LEASE})
    ORDER BY s.expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
"""

# What the metrics endpoint shows of the whole database, read once per scrape.
COUNT_LIVE = f"""
SELECT (SELECT count(*) FROM sessions s WHERE {LIVE}) AS sessions,
       (SELECT count(*) FROM session_leases l WHERE {LIVE_LEASE}) AS leases
"""

# Deleting sessions with everything they hold, for erasure (and the sweeper's expired sessions, when unified): each
# kind counted by its own DELETE … RETURNING, all in the caller's transaction, children before the sessions (whose
# cascades then find nothing left). $1 is the session ids. The snapshot/Storage objects of a session are the keys
# under `session/<session_id>/` (Strands' `SnapshotSessionManager` layout, `SNAPSHOT_PREFIX` below): they are only
# counted here (a range scan of the "C"-collated primary key per session, '0' is the byte after '/'); the trigger
# `sessions_clear_storage` (`sql/functions.py`) deletes them with each session row, once.
SNAPSHOT_PREFIX = "session/"
LOCK_SESSIONS = """
SELECT session_id FROM sessions WHERE session_id = ANY($1::text[]) ORDER BY session_id FOR UPDATE
"""
DELETE_SESSIONS_WITH_STORAGE = f"""
WITH ids AS (SELECT unnest($1::text[]) AS session_id),
messages_gone AS (DELETE FROM messages m USING ids WHERE m.session_id = ids.session_id RETURNING 1),
agents_gone AS (DELETE FROM agents a USING ids WHERE a.session_id = ids.session_id RETURNING 1),
multi_agents_gone AS (DELETE FROM multi_agents ma USING ids WHERE ma.session_id = ids.session_id RETURNING 1),
turns_gone AS (DELETE FROM session_turns t USING ids WHERE t.session_id = ids.session_id RETURNING 1),
leases_gone AS (DELETE FROM session_leases l USING ids WHERE l.session_id = ids.session_id RETURNING 1),
active_gone AS (DELETE FROM session_active_agents aa USING ids WHERE aa.session_id = ids.session_id RETURNING 1),
storage_held AS (
    SELECT 1 FROM storage_objects o, ids
    WHERE o.key >= '{SNAPSHOT_PREFIX}' || ids.session_id || '/' AND o.key < '{SNAPSHOT_PREFIX}' || ids.session_id || '0'
      AND EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = ids.session_id)
)
SELECT (SELECT count(*) FROM messages_gone) AS messages,
       (SELECT count(*) FROM agents_gone) AS agents,
       (SELECT count(*) FROM multi_agents_gone) AS multi_agents,
       (SELECT count(*) FROM turns_gone) AS turns,
       (SELECT count(*) FROM leases_gone) AS leases,
       (SELECT count(*) FROM active_gone) AS active_agents,
       (SELECT count(*) FROM storage_held) AS storage_objects
"""
DELETE_SESSIONS = """
DELETE FROM sessions WHERE session_id = ANY($1::text[])
"""
