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
                        created_at, updated_at, context_window, awaiting_input)
    SELECT s.session_id, a.agent_id, a.state, a.conversation_manager_state, a.internal_state, 1,
           a.created_at, a.updated_at, a.context_window, a.awaiting_input
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

# A fork into another data-key scope (another actor, or a session without one; `db/encryption.py`) re-seals what it
# copied under the new scope's key, in the fork's transaction: the rows as text, then written back as text.
SELECT_SEALED_AGENTS = """
SELECT agent_id, state::text, conversation_manager_state::text, internal_state::text, context_window::text
FROM agents WHERE session_id = $1
"""
RESEAL_AGENTS = """
UPDATE agents a SET state = v.state::json, conversation_manager_state = v.cm::json,
                    internal_state = v.internal::json, context_window = v.win::json
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS v (agent_id, state, cm, internal, win)
WHERE a.session_id = $1 AND a.agent_id = v.agent_id
"""
SELECT_SEALED_MESSAGES = """
SELECT agent_id, message_id, message::text, redact_message::text, body FROM messages WHERE session_id = $1
"""
RESEAL_MESSAGES = """
UPDATE messages m SET message = v.message::json, redact_message = v.redact::json, body = v.body
FROM unnest($2::text[], $3::integer[], $4::text[], $5::text[], $6::text[])
    AS v (agent_id, message_id, message, redact, body)
WHERE m.session_id = $1 AND m.agent_id = v.agent_id AND m.message_id = v.message_id
"""
SELECT_SEALED_MULTI_AGENTS = """
SELECT multi_agent_id, state::text FROM multi_agents WHERE session_id = $1
"""
RESEAL_MULTI_AGENTS = """
UPDATE multi_agents ma SET state = v.state::json
FROM unnest($2::text[], $3::text[]) AS v (multi_agent_id, state)
WHERE ma.session_id = $1 AND ma.multi_agent_id = v.multi_agent_id
"""
