"""SQL for the storage aggregate: bytes under keys (Strands' `Storage`), with a full-text index over their text.

Keys compare in byte order (`COLLATE "C"`), the order of Python's `sorted()` on the keys Strands' `InMemoryStorage`
lists, and prefix scans use the primary key's btree.
"""

# The text search configuration of values and queries.
TS_CONFIG = "english"

UPSERT_OBJECT = f"""
INSERT INTO storage_objects AS o (key, value, content_tsv)
VALUES ($1, $2, to_tsvector('{TS_CONFIG}', $3))
ON CONFLICT (key) DO UPDATE
SET value = excluded.value, content_tsv = excluded.content_tsv, updated_at = now()
"""

SELECT_OBJECT = """
SELECT value FROM storage_objects WHERE key = $1
"""

DELETE_OBJECT = """
DELETE FROM storage_objects WHERE key = $1
"""

# `starts_with` on a "C"-collated key is a range scan of the primary key; keyset pagination after $2.
LIST_KEYS = """
SELECT key FROM storage_objects
WHERE starts_with(key, $1) AND ($2::text IS NULL OR key > $2)
ORDER BY key
LIMIT $3
"""

DELETE_PREFIX = """
WITH gone AS (DELETE FROM storage_objects WHERE starts_with(key, $1) RETURNING 1)
SELECT count(*) FROM gone
"""

# Server-side copy of every key under $1 to the same key under $2 instead (overwriting), in one statement.
COPY_PREFIX = """
WITH copied AS (
    INSERT INTO storage_objects AS o (key, value, content_tsv)
    SELECT $2 || substr(s.key, length($1) + 1), s.value, s.content_tsv
    FROM storage_objects s
    WHERE starts_with(s.key, $1)
    ON CONFLICT (key) DO UPDATE
    SET value = excluded.value, content_tsv = excluded.content_tsv, updated_at = now()
    RETURNING 1
)
SELECT count(*) FROM copied
"""

# Ranked search of the values under prefix $1. A document is the value's text plus the key relative to the prefix
# without its extension (as Strands' keyword search scores "key without extension + content"), computed per row.
# $2 is the query, $3 the most results. The query's terms are OR-ed (any term matches, more terms rank higher), like
# Strands' keyword search, by turning plainto_tsquery's `&` into `|`: lexemes never contain spaces, so ' & ' is
# always an operator. The key's share is computed per row, so the GIN index does not serve this query; the prefix
# range scan bounds it.
SEARCH_OBJECTS = f"""
WITH q AS (
    SELECT replace(plainto_tsquery('{TS_CONFIG}', $2)::text, ' & ', ' | ')::tsquery AS query
), docs AS (
    SELECT o.key,
           o.content_tsv || to_tsvector('{TS_CONFIG}', regexp_replace(
               regexp_replace(substr(o.key, length($1) + 1), '(?<=[^/])\\.[^./]*$', ''), '\\W+', ' ', 'g'
           )) AS tsv
    FROM storage_objects o
    WHERE starts_with(o.key, $1)
)
SELECT d.key, ts_rank(d.tsv, q.query)::float8 AS score
FROM docs d, q
WHERE numnode(q.query) > 0 AND d.tsv @@ q.query
ORDER BY score DESC, d.key
LIMIT $3
"""
