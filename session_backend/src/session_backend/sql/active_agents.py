"""SQL for the active agent of a session: while set (and live), the session's turns go to that agent profile."""

from .common import ACTIVE_AGENT_JSON, LIVE, LIVE_ACTIVE_AGENT

# Set or replace; no row when the session is not live. $3: seconds until the choice lapses (NULL: until deleted).
SET_ACTIVE_AGENT = f"""
INSERT INTO session_active_agents AS aa (session_id, agent_id, expires_at, updated_at)
SELECT s.session_id, $2,
       CASE WHEN $3::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $3::float8) END, now()
FROM sessions s WHERE s.session_id = $1 AND {LIVE}
ON CONFLICT (session_id) DO UPDATE
    SET agent_id = EXCLUDED.agent_id, expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at
RETURNING {ACTIVE_AGENT_JSON}::text
"""

SELECT_ACTIVE_AGENT = f"""
SELECT {ACTIVE_AGENT_JSON}::text FROM session_active_agents aa JOIN sessions s USING (session_id)
WHERE aa.session_id = $1 AND {LIVE} AND {LIVE_ACTIVE_AGENT}
"""

DELETE_ACTIVE_AGENT = f"""
DELETE FROM session_active_agents aa USING sessions s
WHERE aa.session_id = $1 AND s.session_id = aa.session_id AND {LIVE} AND {LIVE_ACTIVE_AGENT}
RETURNING 1
"""

# Per profile, the live sessions routed to it now (read once per metrics scrape).
COUNT_BY_AGENT = f"""
SELECT aa.agent_id, count(*) AS sessions FROM session_active_agents aa JOIN sessions s USING (session_id)
WHERE {LIVE} AND {LIVE_ACTIVE_AGENT}
GROUP BY aa.agent_id
"""

SWEEP_EXPIRED_ACTIVE_AGENTS = """
DELETE FROM session_active_agents WHERE expires_at <= now()
"""
