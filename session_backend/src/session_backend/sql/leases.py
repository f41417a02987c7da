"""SQL for session leases: one writer per session across replicas, with a TTL after which another may take over."""

from .common import ACTIVE_AGENT_JSON, LIVE, LIVE_ACTIVE_AGENT, LIVE_LEASE
from .turns import PENDING_EXTRACTIONS

# Acquire, renew (same owner) or take over (expired); no row returned when another owner holds a live lease.
# The session's incarnation and agent versions come along, so a writer can tell whether its cached agent is still
# current; with an Idempotency-Key ($4), so does the answer of a turn already committed under that key. The session's
# actor (a device may only continue its own sessions) and its live active agent (where the turn goes) come too.
# A live session never expires under its lease: taking or renewing one moves the session's expiry to the lease's end
# at least (the commit then slides it from there, see `sql/functions.py`), so a running turn always finds it.
# The session's turns whose memory extraction is pending come along too: the lease holder finishes them.
ACQUIRE_LEASE = f"""
WITH l AS (
    INSERT INTO session_leases AS l (session_id, owner, locked_at, expires_at)
    VALUES ($1, $2, now(), now() + make_interval(secs => $3))
    ON CONFLICT (session_id) DO UPDATE
        SET owner = EXCLUDED.owner,
            locked_at = CASE WHEN l.owner = EXCLUDED.owner THEN l.locked_at ELSE now() END,
            expires_at = EXCLUDED.expires_at
        WHERE l.owner = EXCLUDED.owner OR NOT {LIVE_LEASE}
    RETURNING l.session_id, l.owner, l.locked_at, l.expires_at
), kept_alive AS (
    UPDATE sessions s SET expires_at = l.expires_at
    FROM l
    WHERE s.session_id = $1 AND s.expires_at IS NOT NULL AND {LIVE} AND s.expires_at < l.expires_at
)
SELECT l.session_id, l.owner, l.locked_at, l.expires_at,
       (SELECT coalesce(jsonb_object_agg(a.agent_id, a.version), '{{}}'::jsonb)
        FROM agents a WHERE a.session_id = $1) AS agent_versions,
       (SELECT s.incarnation FROM sessions s WHERE s.session_id = $1 AND {LIVE}) AS incarnation,
       (SELECT s.actor_id FROM sessions s WHERE s.session_id = $1 AND {LIVE}) AS actor_id,
       (SELECT {ACTIVE_AGENT_JSON} FROM session_active_agents aa
        WHERE aa.session_id = $1 AND {LIVE_ACTIVE_AGENT}) AS active_agent,
       (SELECT t.result FROM session_turns t
        WHERE t.session_id = $1 AND t.idempotency_key = $4::text AND t.status = 'committed') AS turn,
       coalesce(({PENDING_EXTRACTIONS}), '[]'::json) AS pending_extractions
FROM l
"""

SELECT_LEASE = f"""
SELECT l.session_id, l.owner, l.locked_at, l.expires_at FROM session_leases l
WHERE l.session_id = $1 AND {LIVE_LEASE}
"""

# The expiry the lease held up falls back to `ttl_seconds` from now (the turn is over; never earlier than its writes
# slid it to, and only a live session's).
RELEASE_LEASE = f"""
WITH released AS (
    DELETE FROM session_leases WHERE session_id = $1 AND owner = $2 RETURNING 1
), settled AS (
    UPDATE sessions s SET expires_at = now() + make_interval(secs => s.ttl_seconds)
    FROM released
    WHERE s.session_id = $1 AND s.ttl_seconds IS NOT NULL AND {LIVE}
      AND s.expires_at > now() + make_interval(secs => s.ttl_seconds)
)
SELECT 1 FROM released
"""

SWEEP_EXPIRED_LEASES = """
DELETE FROM session_leases WHERE expires_at <= now()
"""
