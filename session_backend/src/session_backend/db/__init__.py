"""Everything that touches PostgreSQL: the pool, migrations, domain errors, group commit, one store per resource."""
