"""SQL for erasing an actor (`DELETE /v1/actors/{actor_id}`); the sessions' own rows go by `sql/sessions.py`."""

# Every session of the actor, live or expired (not yet swept).
SELECT_ACTOR_SESSIONS = """
SELECT session_id FROM sessions WHERE actor_id = $1 ORDER BY session_id
"""

# The actor's memories, and the memory extractions still pending for the actor in sessions not erased with them (a
# session without an actor, say): none of them may store the actor's memories again after the erasure.
DELETE_ACTOR_MEMORIES = """
WITH gone AS (DELETE FROM actor_memories WHERE actor_id = $1 RETURNING 1),
pending_dropped AS (
    UPDATE session_turns SET extraction = NULL
    WHERE extraction IS NOT NULL AND extracted_at IS NULL AND extraction->>'actor_id' = $1
    RETURNING 1
)
SELECT count(*) FROM gone
"""

# Other actors' sessions handed over to one of the actor's profiles lose that hand-over with it (the foreign key
# would cascade; deleted here first so that it is counted).
DELETE_OWNED_PROFILES = """
WITH owned AS (SELECT agent_id FROM agent_profiles WHERE owner_actor_id = $1 FOR UPDATE),
active_gone AS (
    DELETE FROM session_active_agents aa USING owned WHERE aa.agent_id = owned.agent_id RETURNING 1
),
profiles_gone AS (DELETE FROM agent_profiles p USING owned WHERE p.agent_id = owned.agent_id RETURNING 1)
SELECT (SELECT count(*) FROM profiles_gone) AS profiles, (SELECT count(*) FROM active_gone) AS active_agents
"""

INSERT_ERASURE = """
INSERT INTO erasures (erase_id, actor_digest, counts) VALUES ($1, $2, $3)
RETURNING erased_at
"""
