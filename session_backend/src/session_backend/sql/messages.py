"""SQL for the messages aggregate (one row per Strands `SessionMessage`, keyed by its position `message_id`).

Each row keeps `body`, its API JSON rendered at write time by `render_body`, so reads only concatenate text.
"""

from .sessions import LIVE, iso


def render_body(message: str, message_id: str, redact: str, created: str, updated: str) -> str:
    """SQL building a message's API JSON text from the given SQL expressions."""
    return f"""json_build_object(
        'message', {message}, 'message_id', {message_id}, 'redact_message', {redact},
        'created_at', {iso(created)}, 'updated_at', {iso(updated)})::text"""


AGENT_IS_LIVE = f"""EXISTS (
    SELECT 1 FROM agents a JOIN sessions s ON s.session_id = a.session_id
    WHERE a.session_id = $1 AND a.agent_id = $2 AND {LIVE})"""

# One round trip: insert, or report what already sits at that id. The outer SELECT reads the snapshot taken before
# the insert, so the existing_* columns are NULL when this statement inserted the row (or lost a race it cannot see).
INSERT_MESSAGE = f"""
WITH parent AS (
    SELECT {AGENT_IS_LIVE} AS live
), v AS (
    SELECT coalesce($6::timestamptz, now()) AS created_at, coalesce($7::timestamptz, now()) AS updated_at
), ins AS (
    INSERT INTO messages AS m
        (session_id, agent_id, message_id, message, redact_message, created_at, updated_at, body)
    SELECT $1, $2, $3, $4, $5, v.created_at, v.updated_at,
           {render_body("$4::jsonb", "$3::integer", "$5::jsonb", "v.created_at", "v.updated_at")}
    FROM parent, v WHERE parent.live
    ON CONFLICT (session_id, agent_id, message_id) DO NOTHING
    RETURNING m.body
), existing AS (
    SELECT m.message = $4 AND m.redact_message IS NOT DISTINCT FROM $5 AS same, m.body
    FROM messages m WHERE m.session_id = $1 AND m.agent_id = $2 AND m.message_id = $3
)
SELECT (SELECT live FROM parent) AS parent_live,
       (SELECT body FROM ins) AS inserted_body,
       (SELECT same FROM existing) AS existing_same,
       (SELECT body FROM existing) AS existing_body
"""

SELECT_MESSAGE_SAME = """
SELECT m.message = $4 AND m.redact_message IS NOT DISTINCT FROM $5 AS same, m.body
FROM messages m WHERE m.session_id = $1 AND m.agent_id = $2 AND m.message_id = $3
"""

SELECT_MESSAGE = f"""
SELECT m.body FROM messages m
WHERE m.session_id = $1 AND m.agent_id = $2 AND m.message_id = $3 AND {AGENT_IS_LIVE}
"""

UPDATE_MESSAGE = f"""
UPDATE messages AS m
SET message = $4, redact_message = $5, updated_at = coalesce($6, now()),
    body = {render_body("$4::jsonb", "m.message_id", "$5::jsonb", "m.created_at", "coalesce($6, now())")}
WHERE m.session_id = $1 AND m.agent_id = $2 AND m.message_id = $3 AND {AGENT_IS_LIVE}
RETURNING m.body
"""

# Bodies in message_id order (the caller joins them into one JSON array: no per-row JSON work at read time).
# No row at all when the session or agent is unknown (404); one NULL body when the page is empty.
LIST_MESSAGE_BODIES = f"""
SELECT m.body
FROM (SELECT 1 WHERE {AGENT_IS_LIVE}) AS parent
LEFT JOIN LATERAL (
    SELECT body, message_id FROM messages
    WHERE session_id = $1 AND agent_id = $2
    ORDER BY message_id
    OFFSET $3 LIMIT $4
) AS m ON true
ORDER BY m.message_id
"""
