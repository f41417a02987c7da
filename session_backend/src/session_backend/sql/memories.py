"""SQL for long-term memories per actor, searched by meaning (pgvector, where the server has it) and by words.

Words: an english tsvector with a GIN index, queries parsed by `websearch_to_tsquery`, ranked by `ts_rank_cd`.
Meaning: a `vector(384)` per memory (cosine distance, HNSW index). Hybrid: both candidate lists fused by reciprocal
rank. Reads return JSON text built by PostgreSQL.
"""

from .common import iso

# Where a memory came from: the session's agent and message ids it was extracted from (null when not given, or once
# that session is deleted: the foreign key sets the source to NULL, so a caller that wants derived memories gone
# deletes them by source before deleting the session).
MEMORY_SOURCE = """CASE WHEN m.source_session_id IS NULL THEN NULL ELSE json_build_object(
    'session_id', m.source_session_id, 'agent_id', m.source_agent_id, 'message_ids', m.source_message_ids) END"""

MEMORY_JSON = f"""json_build_object(
    'memory_id', m.memory_id, 'content', m.content, 'metadata', m.metadata, 'source', {MEMORY_SOURCE},
    'created_at', {iso("m.created_at")})"""


def _hit_json(score: str) -> str:
    return f"""json_build_object(
    'memory_id', m.memory_id, 'content', m.content, 'metadata', m.metadata, 'source', {MEMORY_SOURCE},
    'score', {score}, 'created_at', {iso("m.created_at")})::text"""


HAS_VECTORS = """
SELECT EXISTS (
    SELECT 1 FROM pg_attribute
    WHERE attrelid = 'actor_memories'::regclass AND attname = 'embedding' AND NOT attisdropped
)
"""

# Adds of one actor are serialised (transaction-scoped advisory lock) so the cap holds under concurrent writers.
LOCK_ACTOR = "SELECT pg_advisory_xact_lock(hashtextextended('actor_memories:' || $1, 0))"

# How many memories the actor has, and how many of the contents in $2 it does not have yet (distinct).
COUNT_FOR_CAP = """
SELECT (SELECT count(*) FROM actor_memories WHERE actor_id = $1) AS stored,
       (SELECT count(DISTINCT md5(c)) FROM unnest($2::text[]) AS c
        WHERE NOT EXISTS (SELECT 1 FROM actor_memories m WHERE m.actor_id = $1 AND md5(m.content) = md5(c))) AS new
"""


def _insert_memories(vectors: bool) -> str:
    # $2 is a JSON array of {content, metadata, source?, search_text}: `content` as stored (sealed with encryption on),
    # `search_text` what the full-text index keeps (NULL: nothing, `db/encryption.py`'s search modes); with vectors,
    # $3 holds each element's embedding (pgvector text) at the same position. One row per input element, in input
    # order: whether this statement stored it, and the memory as JSON (the one already stored when the content was a
    # duplicate; NULL when a concurrent transaction stored the same content after this statement's snapshot, and the
    # caller retries).
    embedding = ", embedding" if vectors else ""
    embedding_value = ", ($3::text[])[i.position]::vector" if vectors else ""
    return f"""
WITH input AS (
    SELECT e.position, e.value->>'content' AS content, e.value->>'search_text' AS search_text,
           coalesce(e.value->'metadata', '{{}}'::jsonb) AS metadata,
           e.value->'source'->>'session_id' AS session_id, e.value->'source'->>'agent_id' AS agent_id,
           CASE WHEN e.value->'source' IS NULL OR e.value->'source' = 'null'::jsonb THEN NULL ELSE ARRAY(
               SELECT x::integer FROM jsonb_array_elements_text(e.value->'source'->'message_ids') AS x) END
               AS message_ids
    FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS e (value, position)
), inserted AS (
    INSERT INTO actor_memories AS m (
        actor_id, content, search, metadata, source_session_id, source_agent_id, source_message_ids{embedding})
    SELECT $1, i.content, to_tsvector('english', i.search_text), i.metadata, i.session_id, i.agent_id, i.message_ids
           {embedding_value}
    FROM input i ORDER BY i.position
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


INSERT_MEMORIES = _insert_memories(vectors=False)
INSERT_MEMORIES_WITH_VECTORS = _insert_memories(vectors=True)

# `websearch_to_tsquery` parses the query (quoted phrases, `or`, `-word`); its terms must all match. With $3 true
# (match any term) the parsed query's ANDs become ORs and its negations are dropped (`querytree`), so a whole
# question finds memories sharing some of its words, and `ts_rank_cd` puts those sharing the most first.
TS_QUERY = """
parsed AS (
    SELECT websearch_to_tsquery('english', $2) AS strict
), q AS (
    SELECT CASE
        WHEN NOT $3 THEN strict
        WHEN querytree(strict) IN ('', 'T') THEN ''::tsquery
        ELSE replace(querytree(strict), ' & ', ' | ')::tsquery
    END AS query
    FROM parsed
)"""

# Bounded cost: at most $5 matching memories (those the GIN index yields first) are ranked, however many match.
SEARCH_MEMORIES = f"""
WITH {TS_QUERY}, candidates AS (
    SELECT m.* FROM actor_memories m, q WHERE m.actor_id = $1 AND m.search @@ q.query LIMIT $5
)
SELECT {_hit_json("ts_rank_cd(m.search, q.query, 32)")}
FROM candidates m, q
ORDER BY ts_rank_cd(m.search, q.query, 32) DESC, m.created_at DESC, m.memory_id DESC
LIMIT $4
"""

# By meaning alone: the $3 nearest memories of the actor ($2: the query's embedding); score = cosine similarity.
SEARCH_MEMORIES_BY_VECTOR = f"""
SELECT {_hit_json("1 - (m.embedding <=> $2::vector)")}
FROM actor_memories m
WHERE m.actor_id = $1 AND m.embedding IS NOT NULL
ORDER BY m.embedding <=> $2::vector
LIMIT $3
"""

# Hybrid: the best $6 by words ($5 candidates ranked, as in SEARCH_MEMORIES) and the $6 nearest by meaning ($7: the
# query's embedding), fused by reciprocal rank (score: sum over both lists of weight / (60 + rank); $8 weighs words).
SEARCH_MEMORIES_HYBRID = f"""
WITH {TS_QUERY}, candidates AS (
    SELECT m.memory_id, m.search, m.created_at FROM actor_memories m, q
    WHERE m.actor_id = $1 AND m.search @@ q.query LIMIT $5
), by_words AS (
    SELECT c.memory_id,
           row_number() OVER (ORDER BY ts_rank_cd(c.search, q.query, 32) DESC, c.created_at DESC, c.memory_id) AS rank
    FROM candidates c, q
    ORDER BY rank
    LIMIT $6
), nearest AS (
    SELECT m.memory_id, m.embedding <=> $7::vector AS distance FROM actor_memories m
    WHERE m.actor_id = $1 AND m.embedding IS NOT NULL
    ORDER BY m.embedding <=> $7::vector
    LIMIT $6
), by_meaning AS (
    SELECT n.memory_id, row_number() OVER (ORDER BY n.distance, n.memory_id) AS rank FROM nearest n
), fused AS (
    SELECT h.memory_id, sum(h.weight / (60 + h.rank)) AS score FROM (
        SELECT memory_id, rank, $8::float8 AS weight FROM by_words
        UNION ALL
        SELECT memory_id, rank, 1.0::float8 FROM by_meaning
    ) h
    GROUP BY h.memory_id
)
SELECT {_hit_json("f.score")}
FROM fused f JOIN actor_memories m ON m.actor_id = $1 AND m.memory_id = f.memory_id
ORDER BY f.score DESC, m.created_at DESC, m.memory_id DESC
LIMIT $4
"""

LIST_MEMORIES = f"""
SELECT {_hit_json("NULL")}
FROM actor_memories m
WHERE m.actor_id = $1
ORDER BY m.created_at DESC, m.memory_id DESC
LIMIT $2
"""

SELECT_UNEMBEDDED = """
SELECT actor_id, memory_id, content FROM actor_memories WHERE embedding IS NULL LIMIT $1
"""

SET_EMBEDDINGS = """
UPDATE actor_memories m SET embedding = v.embedding::vector
FROM unnest($1::text[], $2::uuid[], $3::text[]) AS v (actor_id, memory_id, embedding)
WHERE m.actor_id = v.actor_id AND m.memory_id = v.memory_id AND m.embedding IS NULL
"""

DELETE_MEMORY = """
DELETE FROM actor_memories WHERE actor_id = $1 AND memory_id = $2 RETURNING 1
"""

DELETE_ACTOR_MEMORIES = """
DELETE FROM actor_memories WHERE actor_id = $1
"""

# Before a session is deleted (its delete sets the sources to NULL): the memories extracted from it.
DELETE_SESSION_MEMORIES = """
DELETE FROM actor_memories WHERE source_session_id = $1
"""
