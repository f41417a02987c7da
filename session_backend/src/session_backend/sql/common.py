"""SQL pieces every statement and function shares: timestamp format, live-session predicate, JSON shape of rows.

Change one here and every read and write follows.
"""


def iso(value: str) -> str:
    """SQL rendering the timestamptz `value` as Python's `datetime.isoformat()` does for UTC.

    Always 6 fractional digits, so Strands' own timestamp strings come back exactly as they were sent.

    Args:
        value: a SQL expression of type timestamptz (a column or a PL/pgSQL variable).

    Returns:
        A SQL expression of type text (NULL when `value` is NULL).
    """
    return f"""to_char({value} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


# A session that has expired reads as absent everywhere, before the sweeper deletes it. `s` is the sessions row.
LIVE = "(s.expires_at IS NULL OR s.expires_at > now())"

# One live agent: `FROM {LIVE_AGENT}` is the agent `$2` of the live session `$1` (`a`: the agents row, `s`: its
# session); no row when either is unknown or the session has expired.
LIVE_AGENT = f"""agents a JOIN sessions s ON s.session_id = a.session_id
WHERE a.session_id = $1 AND a.agent_id = $2 AND {LIVE}"""

# Strands' namespace of snapshot sessions in `storage_objects`: a session's objects are the keys under
# `session/<session_id>/` (see the agent service's `SESSIONS_NAMESPACE`). They live and die with the session row.
SESSION_STORAGE_PREFIX = "session/"

# A lease past its expiry is held by no one (the next writer takes it over, the sweeper deletes it). `l`: the lease.
LIVE_LEASE = "(l.expires_at > now())"


def sliding_expiry(ttl_seconds: str, session_id: str) -> str:
    """SQL of a session's expiry after a write now: `ttl_seconds` from now, and never before a live lease on it ends.

    A session never expires under a running turn: taking the lease moves the expiry to the lease's end at least
    (`sql/leases.py`), and a write during the turn (or the creation of the session under it) keeps it there.

    Args:
        ttl_seconds: SQL expression of the session's lifetime in seconds (bigint, not NULL).
        session_id: SQL expression of the session's id.

    Returns:
        A SQL expression of type timestamptz.
    """
    return f"""greatest(now() + make_interval(secs => {ttl_seconds}),
        (SELECT l.expires_at FROM session_leases l WHERE l.session_id = {session_id} AND {LIVE_LEASE}))"""


# An active agent past its expiry routes nothing: the session is back with its own profile. `aa`: the row.
LIVE_ACTIVE_AGENT = "(aa.expires_at IS NULL OR aa.expires_at > now())"

# The session's current routing choice (`session_active_agents` row `aa`).
ACTIVE_AGENT_JSON = f"""jsonb_build_object(
    'session_id', aa.session_id, 'agent_id', aa.agent_id, 'expires_at', {iso("aa.expires_at")},
    'updated_at', {iso("aa.updated_at")})"""

# Guard of every write into a session: it exists ($1) and is live.
LIVE_SESSION_EXISTS = f"EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = $1 AND {LIVE})"

# `Session.to_dict()` plus the backend's fields; `s` is the sessions row.
SESSION_JSON = f"""json_build_object(
    'session_id', s.session_id, 'session_type', s.session_type,
    'created_at', {iso("s.created_at")}, 'updated_at', {iso("s.updated_at")},
    'actor_id', s.actor_id, 'metadata', s.metadata, 'expires_at', {iso("s.expires_at")},
    'incarnation', s.incarnation)"""

# `SessionAgent.to_dict()` plus `version`; `a` is the agents row.
AGENT_JSON = f"""json_build_object(
    'agent_id', a.agent_id, 'state', a.state, 'conversation_manager_state', a.conversation_manager_state,
    '_internal_state', a.internal_state, 'created_at', {iso("a.created_at")}, 'updated_at', {iso("a.updated_at")},
    'version', a.version)"""

# `{id, state}` of a multi-agent; `ma` is the multi_agents row.
MULTI_AGENT_JSON = "json_build_object('id', ma.multi_agent_id, 'state', ma.state)"


def message_json(message: str, message_id: str, redact_message: str, created_at: str, updated_at: str) -> str:
    """SQL building `SessionMessage.to_dict()` (the `body` stored with each message row) from SQL expressions.

    Args:
        message: json expression of the message.
        message_id: integer expression of its position.
        redact_message: json expression of the redacted form, or NULL.
        created_at: timestamptz expression.
        updated_at: timestamptz expression.

    Returns:
        A SQL expression of type json.
    """
    return f"""json_build_object(
        'message', {message}, 'message_id', {message_id}, 'redact_message', {redact_message},
        'created_at', {iso(created_at)}, 'updated_at', {iso(updated_at)})"""
