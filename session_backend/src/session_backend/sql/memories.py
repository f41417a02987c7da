"""SQL for long-term memories per actor, searched by meaning (pgvector, where the server has it) and by words.

Words: an english tsvector with a GIN index; a memory scores the rarity (idf) of the query's words it holds.
Meaning: a `vector(384)` per memory (cosine distance, HNSW index). Hybrid: both candidate lists, each memory scored
cosine similarity plus a weighted share of the query's word weight. Reads return JSON text built by PostgreSQL.
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

# Words: each term of the query ($2, parsed by `websearch_to_tsquery`, english; negated terms dropped) weighs its
# rarity among the actor's memories, BM25's inverse document frequency ln(1 + (n - df + 0.5) / (df + 0.5)), with the
# actor's memory count n counted up to 10 x $5 and a term's df up to $5 (bounded cost; past the caps a word is common
# either way). A memory's word score is the sum of the weights of the query terms it holds (no term frequency or
# length: memories are one fact each); terms no memory holds weigh nothing. Candidates: memories holding any term, or
# with $3 false every term (quoted phrases, `or`, `-word`); at most $5 of them (those the GIN index yields first).
WORDS = """
parsed AS (
    SELECT websearch_to_tsquery('english', $2) AS strict
), terms AS (
    -- each quoted lexeme of the query's positive part ('' or 'T' when it has none), as a one-term query
    SELECT DISTINCT t[1]::tsquery AS query
    FROM parsed, regexp_matches(querytree(parsed.strict), '''(?:[^'']|'''')*''', 'g') AS t
), actor AS (
    SELECT count(*)::float8 AS n FROM (SELECT 1 FROM actor_memories WHERE actor_id = $1 LIMIT 10 * $5) x
), weighted AS (
    SELECT t.query, ln(1 + (a.n - d.df + 0.5) / (d.df + 0.5)) AS idf
    FROM terms t, actor a, LATERAL (
        SELECT count(*)::float8 AS df FROM (
            SELECT 1 FROM actor_memories m WHERE m.actor_id = $1 AND m.search @@ t.query LIMIT $5) x
    ) d
    WHERE d.df > 0
), total AS (
    SELECT greatest(coalesce(sum(idf), 0), 1e-9) AS idf FROM weighted
), q AS (
    SELECT CASE WHEN $3 THEN coalesce((SELECT string_agg(query::text, ' | ') FROM weighted), '')::tsquery
                ELSE strict END AS query
    FROM parsed
), candidates AS (
    SELECT m.memory_id, m.search, m.created_at FROM actor_memories m, q
    WHERE m.actor_id = $1 AND m.search @@ q.query LIMIT $5
)"""


def _words_score(search: str) -> str:
    # The share of the query's word weight the memory holds, in [0, 1].
    return f"(SELECT coalesce(sum(w.idf), 0) FROM weighted w WHERE {search} @@ w.query) / (SELECT idf FROM total)"


# Full text: ranked by word score (the score, in (0, 1]), then `ts_rank_cd` (terms close together), newest first.
SEARCH_MEMORIES = f"""
WITH {WORDS}, ranked AS (
    SELECT c.memory_id, {_words_score("c.search")} AS score, ts_rank_cd(c.search, q.query, 32) AS cover, c.created_at
    FROM candidates c, q
    ORDER BY score DESC, cover DESC, c.created_at DESC, c.memory_id DESC
    LIMIT $4
)
SELECT {_hit_json("r.score")}
FROM ranked r JOIN actor_memories m ON m.actor_id = $1 AND m.memory_id = r.memory_id
ORDER BY r.score DESC, r.cover DESC, r.created_at DESC, r.memory_id DESC
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
# query's embedding), each scored cosine similarity + $8 x its word score: meaning ranks, and holding the query's rare
# words (names, places, things) lifts a memory by up to $8.
SEARCH_MEMORIES_HYBRID = f"""
WITH {WORDS}, by_words AS (
    SELECT c.memory_id FROM candidates c ORDER BY {_words_score("c.search")} DESC, c.created_at DESC LIMIT $6
), nearest AS (
    SELECT m.memory_id FROM actor_memories m
    WHERE m.actor_id = $1 AND m.embedding IS NOT NULL
    ORDER BY m.embedding <=> $7::vector
    LIMIT $6
), scored AS (
    SELECT m.memory_id, m.created_at,
           coalesce(1 - (m.embedding <=> $7::vector), 0) + $8::float8 * {_words_score("m.search")} AS score
    FROM (SELECT memory_id FROM by_words UNION SELECT memory_id FROM nearest) p
    JOIN actor_memories m ON m.actor_id = $1 AND m.memory_id = p.memory_id
    ORDER BY score DESC, m.created_at DESC, m.memory_id DESC
    LIMIT $4
)
SELECT {_hit_json("s.score")}
FROM scored s JOIN actor_memories m ON m.actor_id = $1 AND m.memory_id = s.memory_id
ORDER BY s.score DESC, s.created_at DESC, s.memory_id DESC
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
