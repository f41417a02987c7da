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

# Keyset pagination, newest first: (created_at, session_id) strictly below the cursor. A page ends at $4 rows or
# once the rows before it hold $5 bytes of JSON, whichever comes first (at least one row); `fetched` tells whether
# rows were left out, so the caller knows there is a next page.
LIST_SESSIONS = f"""
SELECT created_at, session_id, body, fetched FROM (
    SELECT page.*, count(*) OVER () AS fetched,
           sum(octet_length(page.body)) OVER (ORDER BY page.created_at DESC, page.session_id DESC) AS upto
    FROM (
        SELECT s.created_at, s.session_id, {SESSION_JSON}::text AS body
        FROM sessions s
        WHERE {LIVE}
          AND ($1::text IS NULL OR s.actor_id = $1)
          AND ($2::timestamptz IS NULL OR (s.created_at, s.session_id) < ($2, $3))
        ORDER BY s.created_at DESC, s.session_id DESC
        LIMIT $4
    ) page
) sized
WHERE sized.upto - octet_length(sized.body) < $5
ORDER BY created_at DESC, session_id DESC
"""

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
