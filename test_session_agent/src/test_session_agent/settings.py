"""Settings of the agent service, read once from environment variables (see README.md, Configuration)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service_kit.identifiers import Identifier

ProviderName = Literal["local", "scripted", "bedrock", "openai", "ollama", "anthropic", "litellm"]
SessionManagerName = Literal["repository", "snapshot"]


class AgentSettings(BaseSettings):
    """Configuration of the agent service; each field is read from the environment variable in its alias."""

    # hide_input_in_errors: a malformed AGENT_API_KEYS must not print the keys in the start-up error.
    model_config = SettingsConfigDict(
        extra="ignore",
        populate_by_name=True,
        protected_namespaces=(),
        hide_input_in_errors=True,
        env_ignore_empty=True,
    )

    host: str = Field(default="127.0.0.1", validation_alias="HOST", description="Interface the service listens on.")
    port: int = Field(default=8000, ge=1, le=65535, validation_alias="PORT", description="Port the service listens on.")
    backend_url: str = Field(
        default="http://localhost:8001",
        validation_alias="SESSION_BACKEND_URL",
        description="URL of the session backend.",
    )
    backend_api_key: str | None = Field(
        default=None,
        validation_alias="SESSION_BACKEND_API_KEY",
        description="Bearer token sent to the session backend; unset: none.",
        repr=False,
    )
    backend_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        validation_alias="SESSION_BACKEND_TIMEOUT_SECONDS",
        description="Timeout of one request to the session backend, in seconds.",
    )
    model_provider: ProviderName = Field(
        default="local",
        validation_alias="MODEL_PROVIDER",
        description="LLM provider: local, scripted, bedrock, openai, ollama, anthropic or litellm.",
    )
    model_id: str | None = Field(
        default=None, validation_alias="MODEL_ID", description="Model id for the provider; unset: its default."
    )
    local_model_path: str | None = Field(
        default=None,
        validation_alias="LOCAL_MODEL_PATH",
        description="GGUF file of the local provider; unset: the bundled model.",
    )
    ollama_host: str = Field(
        default="http://localhost:11434", validation_alias="OLLAMA_HOST", description="URL of the Ollama server."
    )
    max_tokens: int = Field(
        default=512, ge=1, validation_alias="MODEL_MAX_TOKENS", description="Most tokens a model call may generate."
    )
    local_model_queue_size: int | None = Field(
        default=16,
        ge=0,
        validation_alias="LOCAL_MODEL_QUEUE_SIZE",
        description="Turns that may wait for the local model's single slot (beyond: 503 with `Retry-After`, nothing "
        "stored).",
    )
    max_tokens_cap: int = Field(
        default=32768,
        ge=1,
        validation_alias="MODEL_MAX_TOKENS_CAP",
        description="Most tokens an agent profile's `max_tokens` may ask for (422 beyond); a stored profile, or "
        "`MODEL_MAX_TOKENS`, above it is held to it.",
    )
    system_prompt: str = Field(
        default=(
            "You are a helpful AI assistant chatting with a human user. You do not know the user's name unless they "
            "told you earlier in this conversation; never invent one. Address the user as 'you' and answer in one "
            "short sentence."
        ),
        validation_alias="AGENT_SYSTEM_PROMPT",
        description="System prompt of agents without a profile.",
    )
    agent_cache_size: int = Field(
        default=256, ge=1, validation_alias="AGENT_CACHE_SIZE", description="Most agents held in memory (LRU)."
    )
    agent_idle_seconds: float = Field(
        default=600.0,
        gt=0,
        validation_alias="AGENT_IDLE_SECONDS",
        description="A cached agent unused this long (seconds) is dropped.",
    )
    max_prompt_chars: int = Field(
        default=32_000, ge=1, validation_alias="MAX_PROMPT_CHARS", description="Longest prompt accepted (422 beyond)."
    )
    session_default_ttl_seconds: int = Field(
        default=86_400,
        ge=0,
        validation_alias="SESSION_DEFAULT_TTL_SECONDS",
        description="Lifetime of a new session, sliding with each turn, in seconds; 0: no expiry.",
    )
    max_request_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        validation_alias="AGENT_MAX_REQUEST_BYTES",
        description="Largest request body accepted (413 beyond) and `/ws` message read (close 1009 beyond), in bytes.",
    )
    session_fallback: Literal["fail", "stateless"] = Field(
        default="fail",
        validation_alias="SESSION_FALLBACK",
        description="Backend down: fail (503) or answer statelessly (no history, nothing stored).",
    )
    # A stopped backend costs a refused connect, an unreachable one the connect timeout times the retries.
    session_fallback_retry_seconds: float = Field(
        default=2.0,
        ge=0,
        validation_alias="SESSION_FALLBACK_RETRY_SECONDS",
        description="After the backend was found down, turns answer statelessly this long without trying it.",
    )
    active_agent_ttl_seconds: float = Field(
        default=3600.0,
        ge=0,
        validation_alias="ACTIVE_AGENT_TTL_SECONDS",
        description="Lifetime of a handoff to another agent profile, in seconds; 0: until deleted.",
    )
    read_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        validation_alias="AGENT_READ_TIMEOUT_SECONDS",
        description="Longest wait for a client's request body, in seconds.",
    )
    max_connections: int = Field(
        default=1024, ge=1, validation_alias="AGENT_MAX_CONNECTIONS", description="Most client connections at once."
    )
    lease_ttl_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        validation_alias="SESSION_LEASE_TTL_SECONDS",
        description="Lifetime of a turn's session lease, renewed every third of it, in seconds.",
    )
    # Hides the lease round trip behind the model's time to first token (bench row `streaming`, 3-6 ms).
    speculative_turns: bool = Field(
        default=True,
        validation_alias="SESSION_SPECULATIVE_TURNS",
        description="A cached agent's model starts while its lease request is in flight (output held until confirmed).",
    )
    session_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        validation_alias="SESSION_WAIT_SECONDS",
        description="Longest wait of a turn for its busy session, in seconds (then 409).",
    )
    turn_workers: int = Field(
        default=32, ge=1, le=1024, validation_alias="AGENT_TURN_WORKERS", description="Threads that run turns."
    )
    max_turns_running: int | None = Field(
        default=None,
        ge=1,
        validation_alias="AGENT_MAX_TURNS_RUNNING",
        description="Turns in progress at once per process; unset: AGENT_TURN_WORKERS.",
    )
    max_turns_queued: int | None = Field(
        default=None,
        ge=0,
        validation_alias="AGENT_MAX_TURNS_QUEUED",
        description="Turns waiting for a place, first come first served (503 beyond); unset: 4 x the running bound.",
    )
    max_turns_per_actor: int | None = Field(
        default=None,
        ge=1,
        validation_alias="AGENT_MAX_TURNS_PER_ACTOR",
        description="One actor's turns running and queued (429 beyond); unset: a quarter of the running bound, "
        "at least 4.",
    )
    memory_recall_budget_seconds: float = Field(
        default=0.3,
        gt=0,
        validation_alias="MEMORY_RECALL_BUDGET_SECONDS",
        description="Longest wait for an actor's memories before a model call, in seconds; past it the call runs "
        "without them (counted in `agent_memory_recall_timeouts_total`).",
    )
    memory_max_extracted_per_turn: int = Field(
        default=20,
        ge=0,
        validation_alias="MEMORY_MAX_EXTRACTED_PER_TURN",
        description="Most memories extracted from one turn (the first ones); the rest are counted in "
        "`agent_memories_not_extracted_total`.",
    )
    log_level: str = Field(default="info", validation_alias="LOG_LEVEL", description="Log level.")
    log_format: Literal["text", "json"] = Field(
        default="text", validation_alias="LOG_FORMAT", description="Log lines as text or JSON."
    )
    session_manager: SessionManagerName = Field(
        default="repository",
        validation_alias="SESSION_MANAGER",
        description="Session manager of the agents: repository (messages) or snapshot (checkpoints).",
    )
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        validation_alias="AGENT_API_KEYS",
        repr=False,
        description="Comma-separated `key:actor_id` pairs; unset: no access control (local development).",
    )
    admin_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        validation_alias="AGENT_ADMIN_KEYS",
        repr=False,
        description=(
            "Comma-separated `key:actor_id` pairs of operators: their actor's key, plus every profile and erasing "
            "any actor; needs `AGENT_API_KEYS`."
        ),
    )
    docs_public: bool = Field(
        default=False,
        validation_alias="AGENT_DOCS_PUBLIC",
        description="Serve `/docs`, `/redoc` and `/openapi.json` without a key (with `AGENT_API_KEYS` they need one).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="AGENT_CORS_ORIGINS",
        description="Comma-separated origins allowed to call from a browser page served elsewhere; unset: CORS off.",
    )

    def admission_bounds(self) -> tuple[int, int, int]:
        """The turn admission bounds, unset ones derived from the worker pool (`service/admission.py`).

        Returns:
            `(running, queued, per_actor)`: a running place per worker, a queue four times that (a burst waits in
            it), and per actor a quarter of the running places (at least 4).
        """
        running = self.max_turns_running or self.turn_workers
        queued = self.max_turns_queued if self.max_turns_queued is not None else 4 * running
        per_actor = self.max_turns_per_actor or max(4, running // 4)
        return running, queued, per_actor

    @field_validator("api_keys", "admin_keys", mode="before")
    @classmethod
    def _key_pairs(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        variable = "AGENT_API_KEYS" if info.field_name == "api_keys" else "AGENT_ADMIN_KEYS"
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
                raise ValueError(f"{variable} pair {n} is not `key:actor_id` (actor_id: 1-256 of A-Z a-z 0-9 ._:@+=-)")
            if key in pairs:
                raise ValueError(f"{variable} pair {n} repeats a key")
            pairs[key] = actor_id
        return pairs

    @model_validator(mode="after")
    def _admin_keys_need_access_control(self) -> AgentSettings:
        if self.admin_keys and not self.api_keys:
            raise ValueError("AGENT_ADMIN_KEYS needs AGENT_API_KEYS (without them the service is open to everyone)")
        if set(self.admin_keys) & set(self.api_keys):
            raise ValueError("a key is in both AGENT_API_KEYS and AGENT_ADMIN_KEYS")
        return self

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return [o.strip().rstrip("/") for o in value.split(",") if o.strip()] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _max_tokens_within_cap(self) -> AgentSettings:
        # One cap for every model of the deployment, the service's own included.
        self.max_tokens = min(self.max_tokens, self.max_tokens_cap)
        return self

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
