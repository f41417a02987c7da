"""`MODEL_PROVIDER` → a Strands `Model`: the offline local model by default, Strands' own providers otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strands.models.model import Model

if TYPE_CHECKING:
    from strands.bidi.models.model import BidiModel

    from ..settings import AgentSettings

PROVIDERS = ("local", "scripted", "bedrock", "openai", "ollama", "anthropic", "litellm")


def build_model(settings: AgentSettings) -> Model:
    """Build the model named by `settings.model_provider`, with `settings.model_id` where the provider takes one.

    Raises:
        ValueError: unknown provider.
        ImportError: the provider's optional dependency is missing (install the `providers` extra).
        FileNotFoundError: `LOCAL_MODEL_PATH` names no file.
    """
    provider = settings.model_provider
    model_id = settings.model_id
    if provider == "local":
        from .local import LocalLlamaModel, resolve_model_path

        path = resolve_model_path(settings.local_model_path)
        config: dict[str, Any] = {"max_tokens": settings.max_tokens}
        if path is not None:
            config["model_path"] = str(path)
        return LocalLlamaModel(**config)
    if provider == "scripted":
        from .scripted import ScriptedModel

        return ScriptedModel(
            first_token_delay=settings.scripted_first_token_delay_ms / 1000,
            token_delay=settings.scripted_token_delay_ms / 1000,
        )
    if provider == "bedrock":
        from strands.models.bedrock import BedrockModel

        return BedrockModel(model_id=model_id) if model_id else BedrockModel()
    if provider == "openai":
        from strands.models.openai import OpenAIModel

        return OpenAIModel(model_id=model_id or "gpt-4o-mini")
    if provider == "anthropic":
        from strands.models.anthropic import AnthropicModel

        return AnthropicModel(model_id=model_id or "claude-sonnet-4-20250514", max_tokens=settings.max_tokens)
    if provider == "ollama":
        from strands.models.ollama import OllamaModel

        return OllamaModel(host=settings.ollama_host, model_id=model_id or "llama3.2")
    if provider == "litellm":
        from strands.models.litellm import LiteLLMModel

        return LiteLLMModel(model_id=model_id or "openai/gpt-4o-mini")
    raise ValueError(f"unknown MODEL_PROVIDER {provider!r}; choose one of {', '.join(PROVIDERS)}")


def build_bidi_model(settings: AgentSettings) -> BidiModel:
    """Build the bidirectional (`BidiAgent`, `/ws/{session_id}`) model of `settings.model_provider`.

    Raises:
        ValueError: the provider has no bidirectional model (`scripted`, `bedrock` and `openai` do).
        ImportError: the provider's optional dependency is missing.
    """
    provider = settings.model_provider
    if provider == "scripted":
        from .scripted_bidi import ScriptedBidiModel

        return ScriptedBidiModel(token_delay=settings.scripted_token_delay_ms / 1000)
    if provider == "bedrock":
        from strands.bidi.models.bedrock import BedrockNovaSonicModel

        return BedrockNovaSonicModel(model_id=settings.model_id or "amazon.nova-2-5-sonic")
    if provider == "openai":
        from strands.bidi.models.openai.realtime import OpenAIRealtimeModel

        return OpenAIRealtimeModel(transcription_model_id=None, model_id=settings.model_id or "gpt-realtime")
    raise ValueError(f"MODEL_PROVIDER {provider!r} has no bidirectional model; use scripted, bedrock or openai")
