"""SQL of the conversion between a session's message log and Strands' `SnapshotSessionManager` objects (#3663).

Reads and writes of the other aggregates reuse their own modules (`sessions`, `agents`, `storage`, the write function).
"""

from .common import LIVE

SELECT_AGENTS = f"""
SELECT a.agent_id, a.state, a.conversation_manager_state, a.internal_state
FROM agents a JOIN sessions s ON s.session_id = a.session_id
WHERE a.session_id = $1 AND {LIVE}
ORDER BY a.agent_id
"""

SELECT_MESSAGES = """
SELECT message, redact_message FROM messages
WHERE session_id = $1 AND agent_id = $2
ORDER BY message_id
"""

AGENT_EXISTS = """
SELECT 1 FROM agents WHERE session_id = $1 AND agent_id = $2
"""

DELETE_MESSAGES = """
DELETE FROM messages WHERE session_id = $1 AND agent_id = $2
"""

OBJECT_EXISTS = """
SELECT 1 FROM storage_objects WHERE key = $1
"""

# The objects under a session's agent scope (`<prefix>session/<session_id>/scopes/agent/`): the caller keeps each
# agent's `snapshot_latest.json`.
SELECT_AGENT_OBJECTS = """
SELECT key, value FROM storage_objects WHERE starts_with(key, $1) AND key LIKE '%/snapshot_latest.json' ORDER BY key
"""
