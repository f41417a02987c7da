"""SQL for the messages aggregate (one row per Strands `SessionMessage`, keyed by its position `message_id`)."""

from .sessions import LIVE, iso

MESSAGE_JSON = f"""json_build_object(
    'message', m.message, 'message_id', m.message_id, 'redact_message', m.redact_message,
    'created_at', {iso("m.created_at")}, 'updated_at', {iso("m.updated_at")})"""

AGENT_IS_LIVE = f"""EXISTS (
    SELECT 1 FROM agents a JOIN sessions s ON s.session_id = a.session_id
    WHERE a.session_id = $1 AND a.agent_id = $2 AND {LIVE})"""

# One round trip: insert, or report what already sits at that id. The outer SELECT reads the snapshot taken before
# the insert, so the existing_* columns are NULL when this statement inserted the row (or lost a race it cannot see).
INSERT_MESSAGE = f"""
WITH parent AS (
    SELECT {AGENT_IS_LIVE} AS live
), ins AS (
    INSERT INTO messages AS m (session_id, agent_id, message_id, message, redact_message, created_at, updated_at)
    SELECT $1, $2, $3, $4, $5, coalesce($6, now()), coalesce($7, now())
    FROM parent WHERE parent.live
    ON CONFLICT (session_id, agent_id, message_id) DO NOTHING
    RETURNING {MESSAGE_JSON}::text AS body
), existing AS (
    SELECT m.message = $4 AND m.redact_message IS NOT DISTINCT FROM $5 AS same, {MESSAGE_JSON}::text AS body
    FROM messages m WHERE m.session_id = $1 AND m.agent_id = $2 AND m.message_id = $3
)
SELECT (SELECT live FROM parent) AS parent_live,
       (SELECT body FROM ins) AS inserted_body,
       (SELECT same FROM existing) AS existing_same,
       (SELECT body FROM existing) AS existing_body
"""

SELECT_MESSAGE_SAME = f"""
SELECT m.message = $4 AND m.redact_message IS NOT DISTINCT FROM $5 AS same, {MESSAGE_JSON}::text AS body
FROM messages m WHERE m.session_id = $1 AND m.agent_id = $2 AND m.message_id = $3
"""

SELECT_MESSAGE = f"""
SELECT {MESSAGE_JSON}::text FROM messages m
WHERE m.session_id = $1 AND m.agent_id = $2 AND m.message_id = $3 AND {AGENT_IS_LIVE}
"""

UPDATE_MESSAGE = f"""
UPDATE messages AS m
SET message = $4, redact_message = $5, updated_at = coalesce($6, now())
WHERE m.session_id = $1 AND m.agent_id = $2 AND m.message_id = $3 AND {AGENT_IS_LIVE}
RETURNING {MESSAGE_JSON}::text
"""

# The whole page is one JSON array built by PostgreSQL: no per-row decoding or re-encoding in Python.
# NULL (no row) when the session or agent is unknown, so the caller can answer 404.
LIST_MESSAGES = f"""
SELECT (
    SELECT coalesce(json_agg({MESSAGE_JSON} ORDER BY m.message_id), '[]'::json)::text
    FROM (SELECT * FROM messages
          WHERE session_id = $1 AND agent_id = $2
          ORDER BY message_id
          OFFSET $3 LIMIT $4) m
)
WHERE {AGENT_IS_LIVE}
"""
