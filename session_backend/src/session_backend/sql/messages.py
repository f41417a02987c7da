"""SQL reading the messages aggregate (one row per Strands `SessionMessage`, keyed by its position `message_id`).

Each row keeps `body`, its API JSON rendered when written (by `session_backend_write` in `sql/functions.py`, which
does every message write), so reads only join text.
"""

from .common import LIVE_AGENT

AGENT_IS_LIVE = f"EXISTS (SELECT 1 FROM {LIVE_AGENT})"

SELECT_MESSAGE = f"""
SELECT m.body FROM messages m
WHERE m.session_id = $1 AND m.agent_id = $2 AND m.message_id = $3 AND {AGENT_IS_LIVE}
"""

# Bodies in message_id order (the caller joins them into one JSON array: no per-row JSON work at read time), each
# row with whether the agent has a context window recorded (`windowed`, the same on every row; a restore then knows
# whether to ask for it). No row at all when the session or agent is unknown (404); one NULL body when the page is
# empty.
LIST_MESSAGE_BODIES = f"""
SELECT m.body, parent.windowed
FROM (SELECT a.context_window IS NOT NULL AS windowed FROM {LIVE_AGENT}) AS parent
LEFT JOIN LATERAL (
    SELECT body, message_id FROM messages
    WHERE session_id = $1 AND agent_id = $2
    ORDER BY message_id
    OFFSET $3 LIMIT $4
) AS m ON true
ORDER BY m.message_id
"""

# The agent's stored context window (NULL: none recorded); no row when the session or agent is unknown.
SELECT_CONTEXT_WINDOW = f"""
SELECT a.context_window FROM {LIVE_AGENT}
"""

# The stored messages a context window refers to ($3) and those stored after it was taken (message_id > $4).
SELECT_WINDOW_MESSAGES = """
SELECT message_id, message, redact_message FROM messages
WHERE session_id = $1 AND agent_id = $2 AND (message_id = ANY($3::integer[]) OR message_id > $4)
ORDER BY message_id
"""
