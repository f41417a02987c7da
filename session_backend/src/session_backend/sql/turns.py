"""SQL for turn records: a retry returns the first answer, a writer that lost its response learns the outcome.

Each committed agent turn leaves a row naming it: its turn id, the client's Idempotency-Key and the answer given.
"""

from .common import iso

TURN_JSON = f"""json_build_object(
    'turn_id', t.turn_id, 'idempotency_key', t.idempotency_key, 'status', t.status, 'result', t.result,
    'created_at', {iso("t.created_at")})"""

# Decide the outcome of a turn whose writer lost the answer to its batch: a tombstone when no row exists yet (a batch
# still in flight then fails on the primary key). Waits for an in-flight batch that already wrote the row; then no row
# is returned and `SELECT_TURN`, a new statement with a new snapshot, reads what that batch committed.
INSERT_TURN_TOMBSTONE = f"""
INSERT INTO session_turns AS t (session_id, turn_id, status)
SELECT s.session_id, $2, 'aborted' FROM sessions s WHERE s.session_id = $1
ON CONFLICT (session_id, turn_id) DO NOTHING
RETURNING {TURN_JSON}::text
"""

SELECT_TURN = f"""
SELECT {TURN_JSON}::text FROM session_turns t WHERE t.session_id = $1 AND t.turn_id = $2
"""

# Turn records outlive any sensible client retry by far after a day; the sweeper removes older ones.
SWEEP_OLD_TURNS = """
DELETE FROM session_turns WHERE created_at < now() - make_interval(secs => $1)
"""
