"""SQL for the agents aggregate (one row per Strands `SessionAgent`, with an optimistic-concurrency `version`).

Updates go through `session_backend_write` (`sql/functions.py`). Every statement returns `version, body`.
"""

from .common import AGENT_JSON, LIVE_AGENT, LIVE_SESSION_EXISTS

# The session must be live; a missing parent is reported as no row by the guard, a duplicate by ON CONFLICT.
INSERT_AGENT = f"""
INSERT INTO agents AS a (session_id, agent_id, state, conversation_manager_state, internal_state,
                         created_at, updated_at, version, awaiting_input)
SELECT $1, $2, $3, $4, $5, coalesce($6, now()), coalesce($7, now()), 1, $8
WHERE {LIVE_SESSION_EXISTS}
ON CONFLICT (session_id, agent_id) DO NOTHING
RETURNING a.version, {AGENT_JSON}::text AS body
"""

SELECT_AGENT = f"""
SELECT a.version, {AGENT_JSON}::text AS body
FROM {LIVE_AGENT}
"""
