"""SQL for multi-agent state (Strands `MultiAgentBase.serialize_state()`), one row per multi-agent id."""

from .common import LIVE, LIVE_SESSION_EXISTS, MULTI_AGENT_JSON

INSERT_MULTI_AGENT = f"""
INSERT INTO multi_agents AS ma (session_id, multi_agent_id, state)
SELECT $1, $2, $3 WHERE {LIVE_SESSION_EXISTS}
ON CONFLICT (session_id, multi_agent_id) DO NOTHING
RETURNING {MULTI_AGENT_JSON}::text
"""

SELECT_MULTI_AGENT = f"""
SELECT {MULTI_AGENT_JSON}::text
FROM multi_agents ma JOIN sessions s ON s.session_id = ma.session_id
WHERE ma.session_id = $1 AND ma.multi_agent_id = $2 AND {LIVE}
"""

UPDATE_MULTI_AGENT = f"""
UPDATE multi_agents AS ma SET state = $3, updated_at = now()
FROM sessions s
WHERE ma.session_id = $1 AND ma.multi_agent_id = $2 AND s.session_id = ma.session_id AND {LIVE}
RETURNING {MULTI_AGENT_JSON}::text
"""
