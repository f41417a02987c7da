"""SQL for long-term memories per actor, searched in full text.

An english tsvector with a GIN index, queries parsed by `websearch_to_tsquery`, ranked by `ts_rank_cd`. Reads return
JSON text built by PostgreSQL.
"""

from .common import iso

MEMORY_JSON = f"""json_build_object(
    'memory_id', m.memory_id, 'content', m.content, 'metadata', m.metadata, 'created_at', {iso("m.created_at")})"""

# $2 is a JSON array of {content, metadata}. Returns one row per input element, in input order: whether this
# statement stored it, and the memory as JSON (the one already stored when the content was a duplicate; NULL when a
# concurrent transaction stored the same content after this statement's snapshot, and the caller retries).
INSERT_MEMORIES = f"""
WITH input AS (
    SELECT e.position, e.value->>'content' AS content, coalesce(e.value->'metadata', '{{}}'::jsonb) AS metadata
    FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS e (value, position)
), inserted AS (
    INSERT INTO actor_memories AS m (actor_id, content, metadata)
    SELECT $1, i.content, i.metadata FROM input i ORDER BY i.position
    ON CONFLICT (actor_id, md5(content)) DO NOTHING
    RETURNING md5(m.content) AS digest, {MEMORY_JSON}::text AS body
)
SELECT ins.body IS NOT NULL AS created, coalesce(ins.body, old.body) AS body
FROM input i
LEFT JOIN inserted ins ON ins.digest = md5(i.content)
LEFT JOIN LATERAL (
    SELECT {MEMORY_JSON}::text AS body FROM actor_memories m WHERE m.actor_id = $1 AND md5(m.content) = md5(i.content)
) old ON true
ORDER BY i.position
"""

# `websearch_to_tsquery` parses the query (quoted phrases, `or`, `-word`); its terms must all match. With $3 true
# (match any term) the parsed query's ANDs become ORs and its negations are dropped (`querytree`), so a whole
# question finds memories sharing some of its words, and `ts_rank_cd` puts those sharing the most first.
SEARCH_MEMORIES = f"""
WITH parsed AS (
    SELECT websearch_to_tsquery('english', $2) AS strict
), q AS (
    SELECT CASE
        WHEN NOT $3 THEN strict
        WHEN querytree(strict) IN ('', 'T') THEN ''::tsquery
        ELSE replace(querytree(strict), ' & ', ' | ')::tsquery
    END AS query
    FROM parsed
)
SELECT json_build_object(
    'memory_id', m.memory_id, 'content', m.content, 'metadata', m.metadata,
    'score', ts_rank_cd(m.search, q.query, 32), 'created_at', {iso("m.created_at")})::text
FROM actor_memories m, q
WHERE m.actor_id = $1 AND m.search @@ q.query
ORDER BY ts_rank_cd(m.search, q.query, 32) DESC, m.created_at DESC, m.memory_id DESC
LIMIT $4
"""

LIST_MEMORIES = f"""
SELECT json_build_object(
    'memory_id', m.memory_id, 'content', m.content, 'metadata', m.metadata,
    'score', NULL, 'created_at', {iso("m.created_at")})::text
FROM actor_memories m
WHERE m.actor_id = $1
ORDER BY m.created_at DESC, m.memory_id DESC
LIMIT $2
"""

DELETE_MEMORY = """
DELETE FROM actor_memories WHERE actor_id = $1 AND memory_id = $2 RETURNING 1
"""

DELETE_ACTOR_MEMORIES = """
DELETE FROM actor_memories WHERE actor_id = $1
"""
