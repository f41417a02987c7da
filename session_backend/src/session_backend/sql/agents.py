"""SQL for the agents aggregate (one row per Strands `SessionAgent`, with an optimistic-concurrency `version`)."""

from .sessions import LIVE, iso

AGENT_JSON = f"""json_build_object(
    'agent_id', a.agent_id, 'state', a.state, 'conversation_manager_state', a.conversation_manager_state,
    '_internal_state', a.internal_state, 'created_at', {iso("a.created_at")}, 'updated_at', {iso("a.updated_at")},
    'version', a.version)"""

# The session must be live; a missing parent is reported as no row by the EXISTS guard, a duplicate by ON CONFLICT.
INSERT_AGENT = f"""
INSERT INTO agents AS a (session_id, agent_id, state, conversation_manager_state, internal_state,
                         created_at, updated_at, version)
SELECT $1, $2, $3, $4, $5, coalesce($6, now()), coalesce($7, now()), 1
WHERE EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = $1 AND {LIVE})
ON CONFLICT (session_id, agent_id) DO NOTHING
RETURNING {AGENT_JSON}::text
"""

SELECT_AGENT = f"""
SELECT {AGENT_JSON}::text
FROM agents a JOIN sessions s ON s.session_id = a.session_id
WHERE a.session_id = $1 AND a.agent_id = $2 AND {LIVE}
"""
