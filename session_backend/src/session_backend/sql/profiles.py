"""SQL for agent profiles: reads return JSON text built by PostgreSQL."""

from .common import iso

PROFILE_JSON = f"""json_build_object(
    'agent_id', p.agent_id, 'name', p.name, 'system_prompt', p.system_prompt, 'model_config', p.model_config,
    'tools', to_json(p.tools), 'owner_actor_id', p.owner_actor_id, 'shared', p.shared,
    'created_at', {iso("p.created_at")}, 'updated_at', {iso("p.updated_at")})"""

INSERT_PROFILE = f"""
INSERT INTO agent_profiles AS p (agent_id, name, system_prompt, model_config, tools, shared, owner_actor_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (agent_id) DO NOTHING
RETURNING {PROFILE_JSON}::text
"""

SELECT_PROFILE = f"""
SELECT {PROFILE_JSON}::text FROM agent_profiles p WHERE p.agent_id = $1
"""

# Keyset pagination by agent_id: the cursor is the last agent_id of the previous page. With $3 (an actor), only the
# profiles that actor may use: its own, shared ones, and ownerless ones (created without access control).
LIST_PROFILES = f"""
SELECT p.agent_id, {PROFILE_JSON}::text
FROM agent_profiles p
WHERE ($1::text IS NULL OR p.agent_id > $1)
  AND ($3::text IS NULL OR p.owner_actor_id = $3 OR p.owner_actor_id IS NULL OR p.shared)
ORDER BY p.agent_id
LIMIT $2
"""

UPDATE_PROFILE = f"""
UPDATE agent_profiles AS p
SET name = $2, system_prompt = $3, model_config = $4, tools = $5, shared = $6, updated_at = now()
WHERE p.agent_id = $1
RETURNING {PROFILE_JSON}::text
"""

DELETE_PROFILE = """
DELETE FROM agent_profiles WHERE agent_id = $1 RETURNING 1
"""
