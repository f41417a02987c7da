"""SQL for turn records: a retry returns the first answer, a writer that lost its response learns the outcome.

Each committed agent turn leaves a row naming it: its turn id, the client's Idempotency-Key and the answer given.
"""

from .common import iso

TURN_JSON = f"""json_build_object(
    'turn_id', t.turn_id, 'idempotency_key', t.idempotency_key, 'status', t.status, 'result', t.result,
    'created_at', {iso("t.created_at")}, 'extraction', t.extraction, 'extracted_at', {iso("t.extracted_at")})"""

# Most pending extractions a lease hands out: a session's backlog is finished a batch per turn.
MAX_PENDING_EXTRACTIONS = 20

# The session's ($1) committed turns whose memories are not stored yet, oldest first, as a JSON array (NULL: none):
# each turn's `extraction` (actor_id, agent_id, message_ids) with its turn_id.
PENDING_EXTRACTIONS = f"""
SELECT json_agg(p.extraction || jsonb_build_object('turn_id', p.turn_id) ORDER BY p.created_at, p.turn_id)
FROM (SELECT t.turn_id, t.extraction, t.created_at FROM session_turns t
      WHERE t.session_id = $1 AND t.extraction IS NOT NULL AND t.extracted_at IS NULL
      ORDER BY t.created_at, t.turn_id LIMIT {MAX_PENDING_EXTRACTIONS}) p
"""

# The turn ($1, $2) whose extraction is pending for actor $3, locked until the memories' transaction ends: a concurrent
# store of the same turn waits, then finds it extracted (no row) and stores nothing.
LOCK_PENDING_EXTRACTION = """
SELECT 1 FROM session_turns
WHERE session_id = $1 AND turn_id = $2 AND extraction->>'actor_id' = $3 AND extracted_at IS NULL
FOR UPDATE
"""

# A turn's extraction is done: run in the transaction that stores its memories (`db/memories.py`), so the memories
# and the progress land together. A turn gone meanwhile (its session deleted) marks nothing.
MARK_EXTRACTED = """
UPDATE session_turns SET extracted_at = now()
WHERE session_id = $1 AND turn_id = $2 AND extraction IS NOT NULL AND extracted_at IS NULL
"""

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

# Turn records outlive any sensible client retry by far after a day; the sweeper removes older ones, except a turn
# whose extraction is still pending (it goes with its session, or once extracted).
SWEEP_OLD_TURNS = """
DELETE FROM session_turns
WHERE created_at < now() - make_interval(secs => $1) AND (extraction IS NULL OR extracted_at IS NOT NULL)
"""
