"""SQL forking a session: its agents, messages and multi-agent state copied under a new session id, server-side.

One statement (a chain of data-modifying CTEs, whose foreign keys are checked at its end): nothing is copied unless
the new session row is inserted, so a taken id copies nothing. Leases are not copied.
"""

from .common import LIVE, SESSION_JSON

# $1 source, $2 new session id, $3 ttl_seconds (NULL: the source's expiry and sliding window), $4 actor_id (NULL: the
# source's).
# Returns no row when the source is unknown or expired; `session` is NULL when the new id is taken.
FORK_SESSION = f"""
WITH source AS (
    SELECT * FROM sessions s WHERE s.session_id = $1 AND {LIVE}
), s AS (
    INSERT INTO sessions (session_id, session_type, actor_id, metadata, created_at, updated_at, expires_at,
                          ttl_seconds)
    SELECT $2, source.session_type, coalesce($4, source.actor_id),
           source.metadata || jsonb_build_object('forked_from', $1::text), now(), now(),
           CASE WHEN $3::bigint IS NULL THEN source.expires_at ELSE now() + make_interval(secs => $3::bigint) END,
           coalesce($3::bigint, source.ttl_seconds)
    FROM source
    ON CONFLICT (session_id) DO NOTHING
    RETURNING *
), copied_agents AS (
    INSERT INTO agents (session_id, agent_id, state, conversation_manager_state, internal_state, version,
                        created_at, updated_at, context_window)
    SELECT s.session_id, a.agent_id, a.state, a.conversation_manager_state, a.internal_state, 1,
           a.created_at, a.updated_at, a.context_window
    FROM agents a, s WHERE a.session_id = $1
    RETURNING 1
), copied_messages AS (
    INSERT INTO messages (session_id, agent_id, message_id, message, redact_message, created_at, updated_at, body,
                          tracking_id)
    SELECT s.session_id, m.agent_id, m.message_id, m.message, m.redact_message, m.created_at, m.updated_at, m.body,
           m.tracking_id
    FROM messages m, s WHERE m.session_id = $1
    RETURNING 1
), copied_multi_agents AS (
    INSERT INTO multi_agents (session_id, multi_agent_id, state, created_at, updated_at)
    SELECT s.session_id, ma.multi_agent_id, ma.state, ma.created_at, ma.updated_at
    FROM multi_agents ma, s WHERE ma.session_id = $1
    RETURNING 1
)
SELECT (SELECT {SESSION_JSON}::text FROM s) AS session,
       (SELECT count(*) FROM copied_agents) AS agents,
       (SELECT count(*) FROM copied_messages) AS messages,
       (SELECT count(*) FROM copied_multi_agents) AS multi_agents
FROM source
"""
