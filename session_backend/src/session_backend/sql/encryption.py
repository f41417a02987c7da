"""SQL of data keys (encryption at rest, `db/encryption.py`): one row per scope, wrapped by the configured key."""

# A session's scope (its actor's, or its own without an actor) with the scope's data key, when it has one.
SESSION_SCOPE = """
SELECT sc.scope, dk.key_id, dk.wrapping_key_id, dk.wrapped
FROM (SELECT CASE WHEN s.actor_id IS NULL THEN 'session:' || s.session_id ELSE 'actor:' || s.actor_id END AS scope
      FROM sessions s WHERE s.session_id = $1) sc
LEFT JOIN data_keys dk ON dk.scope = sc.scope
"""

SELECT_SCOPE_KEY = """
SELECT key_id, wrapping_key_id, wrapped FROM data_keys WHERE scope = $1
"""

# A concurrent writer may create the scope's key first: then no row, and the caller reads that one.
INSERT_DATA_KEY = """
INSERT INTO data_keys (key_id, scope, wrapping_key_id, wrapped) VALUES ($1, $2, $3, $4)
ON CONFLICT (scope) DO NOTHING
RETURNING key_id
"""

SELECT_DATA_KEYS = """
SELECT key_id, scope, wrapping_key_id, wrapped FROM data_keys WHERE key_id = ANY($1::text[])
"""

DELETE_SCOPE_KEY = """
WITH gone AS (DELETE FROM data_keys WHERE scope = $1 RETURNING 1) SELECT count(*) FROM gone
"""

# Each wrapping key in use, with one data key it wrapped (the start-up check unwraps it).
WRAPPING_KEYS = """
SELECT DISTINCT ON (wrapping_key_id) wrapping_key_id, wrapped AS sample FROM data_keys ORDER BY wrapping_key_id
"""

SELECT_TO_REWRAP = """
SELECT key_id, wrapping_key_id, wrapped FROM data_keys WHERE wrapping_key_id <> $1 ORDER BY key_id LIMIT $2
"""

REWRAP_DATA_KEYS = """
UPDATE data_keys d SET wrapping_key_id = v.wrapping_key_id, wrapped = v.wrapped, rotated_at = now()
FROM unnest($1::text[], $2::text[], $3::bytea[]) AS v (key_id, wrapping_key_id, wrapped)
WHERE d.key_id = v.key_id
"""

COUNT_DATA_KEYS = """
SELECT count(*) FROM data_keys
"""
