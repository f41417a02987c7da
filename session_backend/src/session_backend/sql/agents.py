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

# $8 is the version the writer read (If-Match); NULL means an unconditional write.
UPDATE_AGENT = f"""
UPDATE agents AS a
SET state = $3, conversation_manager_state = $4, internal_state = $5,
    updated_at = coalesce($6, now()), version = a.version + 1
FROM sessions s
WHERE a.session_id = $1 AND a.agent_id = $2 AND s.session_id = a.session_id AND {LIVE}
  AND ($7::bigint IS NULL OR a.version = $7)
RETURNING {AGENT_JSON}::text
"""

SELECT_AGENT_VERSION = f"""
SELECT a.version FROM agents a JOIN sessions s ON s.session_id = a.session_id
WHERE a.session_id = $1 AND a.agent_id = $2 AND {LIVE}
"""
