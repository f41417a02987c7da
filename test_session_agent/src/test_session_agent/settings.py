"""Settings of the agent service, read once from environment variables (see README.md, Configuration)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ProviderName = Literal["local", "scripted", "bedrock", "openai", "ollama", "anthropic", "litellm"]
SessionManagerName = Literal["repository", "snapshot"]


class AgentSettings(BaseSettings):
    """Configuration of the agent service; each field is read from the environment variable in its alias."""

    # hide_input_in_errors: a malformed AGENT_API_KEYS must not print the keys in the start-up error.
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, protected_namespaces=(), hide_input_in_errors=True
    )

    host: str = Field(default="127.0.0.1", validation_alias="HOST")
    port: int = Field(default=8000, ge=1, le=65535, validation_alias="PORT")
    backend_url: str = Field(default="http://localhost:8001", validation_alias="SESSION_BACKEND_URL")
    backend_api_key: str | None = Field(default=None, validation_alias="SESSION_BACKEND_API_KEY")
    backend_timeout_seconds: float = Field(default=10.0, gt=0, validation_alias="SESSION_BACKEND_TIMEOUT_SECONDS")
    model_provider: ProviderName = Field(default="local", validation_alias="MODEL_PROVIDER")
    model_id: str | None = Field(default=None, validation_alias="MODEL_ID")
    local_model_path: str | None = Field(default=None, validation_alias="LOCAL_MODEL_PATH")
    ollama_host: str = Field(default="http://localhost:11434", validation_alias="OLLAMA_HOST")
    max_tokens: int = Field(default=512, ge=1, validation_alias="MODEL_MAX_TOKENS")
    system_prompt: str = Field(
        default=(
            "You are a helpful AI assistant chatting with a human user. You do not know the user's name unless they "
            "told you earlier in this conversation; never invent one. Address the user as 'you' and answer in one "
            "short sentence."
        ),
        validation_alias="AGENT_SYSTEM_PROMPT",
    )
    agent_cache_size: int = Field(default=256, ge=1, validation_alias="AGENT_CACHE_SIZE")
    agent_idle_seconds: float = Field(default=600.0, gt=0, validation_alias="AGENT_IDLE_SECONDS")
    max_prompt_chars: int = Field(default=32_000, ge=1, validation_alias="MAX_PROMPT_CHARS")
    session_default_ttl_seconds: int = Field(default=86_400, ge=0, validation_alias="SESSION_DEFAULT_TTL_SECONDS")
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024, validation_alias="AGENT_MAX_REQUEST_BYTES")
    session_fallback: Literal["fail", "stateless"] = Field(default="fail", validation_alias="SESSION_FALLBACK")
    # After a turn found the backend down, turns answer statelessly for this long without trying it (a stopped
    # backend costs a refused connect, an unreachable one the connect timeout times the retries: seconds a turn).
    session_fallback_retry_seconds: float = Field(default=2.0, ge=0, validation_alias="SESSION_FALLBACK_RETRY_SECONDS")
    active_agent_ttl_seconds: float = Field(default=3600.0, ge=0, validation_alias="ACTIVE_AGENT_TTL_SECONDS")
    read_timeout_seconds: float = Field(default=15.0, gt=0, validation_alias="AGENT_READ_TIMEOUT_SECONDS")
    max_connections: int = Field(default=1024, ge=1, validation_alias="AGENT_MAX_CONNECTIONS")
    lease_ttl_seconds: float = Field(default=30.0, gt=0, le=3600, validation_alias="SESSION_LEASE_TTL_SECONDS")
    # A turn's lease ends inside its commit (`release_lease` in the batch) instead of by a request of its own. Off
    # only to measure it, or against a backend older than write-path version 2.
    release_lease_with_commit: bool = Field(default=True, validation_alias="SESSION_RELEASE_LEASE_WITH_COMMIT")
    # A turn on a cached agent starts its model while the lease request is in flight; the model's output waits for
    # the lease to confirm the agent is current (else the turn runs again from the backend's state). Hides the lease
    # round trip behind the model's time to first token.
    speculative_turns: bool = Field(default=True, validation_alias="SESSION_SPECULATIVE_TURNS")
    # A turn on a cached agent starts its model (an in-process one: scripted or local) on the call Strands is
    # predicted to make, before Strands' own work up to that call; Strands' call takes it only when it is exactly the
    # predicted one. Hides that work behind the model's time to first token.
    model_prefetch: bool = Field(default=True, validation_alias="MODEL_PREFETCH")
    # Plain `POST /process-streaming` requests skip FastAPI's routing, dependencies and middleware (`api/fastlane.py`);
    # off only to measure it.
    fast_lane: bool = Field(default=True, validation_alias="AGENT_FAST_LANE")
    session_wait_seconds: float = Field(default=30.0, ge=0, validation_alias="SESSION_WAIT_SECONDS")
    scripted_first_token_delay_ms: float = Field(default=0.0, ge=0, validation_alias="SCRIPTED_FIRST_TOKEN_DELAY_MS")
    scripted_token_delay_ms: float = Field(default=0.0, ge=0, validation_alias="SCRIPTED_TOKEN_DELAY_MS")
    log_level: str = Field(default="info", validation_alias="LOG_LEVEL")
    log_format: Literal["text", "json"] = Field(default="text", validation_alias="LOG_FORMAT")
    session_manager: SessionManagerName = Field(default="repository", validation_alias="SESSION_MANAGER")
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, validation_alias="AGENT_API_KEYS", repr=False
    )
    """`key:actor_id` pairs, comma-separated; empty: no access control (local development)."""
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, validation_alias="AGENT_CORS_ORIGINS")
    """Origins allowed to call the service from a browser page served elsewhere; empty: CORS off."""

    @field_validator("backend_api_key", "model_id", "local_model_path")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("api_keys", mode="before")
    @classmethod
    def _key_pairs(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        from .api.schemas import Identifier  # here, not at the top: the API package imports these settings

        actor_ids = TypeAdapter(Identifier)
        pairs: dict[str, str] = {}
        for n, item in enumerate((i.strip() for i in value.split(",")), start=1):
            if not item:
                continue
            key, sep, actor_id = (part.strip() for part in item.partition(":"))
            try:
                actor_ids.validate_python(actor_id)
                valid = bool(sep and key)
            except ValidationError:
                valid = False
            if not valid:
                raise ValueError(
                    f"AGENT_API_KEYS pair {n} is not `key:actor_id` (actor_id: 1-256 of A-Z a-z 0-9 ._:@+=-)"
                )
            if key in pairs:
                raise ValueError(f"AGENT_API_KEYS pair {n} repeats a key")
            pairs[key] = actor_id
        return pairs

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return [o.strip().rstrip("/") for o in value.split(",") if o.strip()] if isinstance(value, str) else value

    @field_validator("backend_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("SESSION_BACKEND_URL must be an http(s) URL")
        return value.rstrip("/")


@lru_cache(maxsize=1)
def get_settings() -> AgentSettings:
    """Return the process-wide settings (cached)."""
    return AgentSettings()
