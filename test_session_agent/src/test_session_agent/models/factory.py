"""`MODEL_PROVIDER` → a Strands `Model`: the offline local model by default, Strands' own providers otherwise."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from strands.models.model import Model

if TYPE_CHECKING:
    from strands.bidi.models.model import BidiModel

    from ..settings import AgentSettings

PROVIDERS = ("local", "scripted", "bedrock", "openai", "ollama", "anthropic", "litellm")

# Providers whose sampling settings go in a `params` dict of their config rather than at its top level.
_PARAMS_PROVIDERS = ("openai", "anthropic", "litellm")


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
        from .local import LocalLlamaModel, local_model_queue, resolve_model_path

        path = resolve_model_path(settings.local_model_path)
        config: dict[str, Any] = {"max_tokens": settings.max_tokens}
        if path is not None:
            config["model_path"] = str(path)
        return LocalLlamaModel(queue=local_model_queue(settings.local_model_queue_size), **config)
    if provider == "scripted":
        from .scripted import ScriptedModel

        return ScriptedModel.from_env()
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


def build_profile_model(settings: AgentSettings, model_config: Mapping[str, Any]) -> Model:
    """Build the model of an agent profile's `model_config`; keys it leaves unset come from `settings`.

    Args:
        settings: the service's settings (provider, model id, max tokens, provider hosts).
        model_config: any of `provider`, `model_id`, `max_tokens`, `temperature`.

    Returns:
        The model (not loaded yet).

    Raises:
        ValueError: unknown provider.
        ImportError: the provider's optional dependency is missing.
    """
    provider = model_config.get("provider") or settings.model_provider
    update: dict[str, Any] = {"model_provider": provider}
    if provider != settings.model_provider:
        update["model_id"] = None  # the service's model id names a model of its own provider
    for key in ("model_id", "max_tokens"):
        if model_config.get(key) is not None:
            update[key] = model_config[key]
    if "max_tokens" in update:  # a profile stored before the deployment's cap was lowered is held to it
        update["max_tokens"] = min(int(update["max_tokens"]), settings.max_tokens_cap)
    model = build_model(settings.model_copy(update=update))
    temperature = model_config.get("temperature")
    if temperature is not None:
        if provider in _PARAMS_PROVIDERS:
            params = dict(model.get_config().get("params") or {})
            model.update_config(params=params | {"temperature": temperature})
        else:
            model.update_config(temperature=temperature)
    return model


class ProfileModels:
    """The models of agent profiles, one per distinct `model_config`, built on first use and then shared.

    A profile without model settings (or with exactly the service's own) runs on the service's model.

    Args:
        settings: the service's settings.
        default: the service's model.
    """

    def __init__(self, settings: AgentSettings, default: Model) -> None:
        self.settings = settings
        self.default = default
        self._models: dict[tuple[tuple[str, Any], ...], Model] = {}
        self._lock = threading.Lock()

    def model_for(self, model_config: Mapping[str, Any]) -> Model:
        """The model of `model_config` (built and loaded on first use; blocking).

        Raises:
            ValueError: unknown provider.
            ImportError: the provider's optional dependency is missing.
        """
        wanted = {k: v for k, v in model_config.items() if v is not None}
        if not wanted or wanted == {"provider": self.settings.model_provider}:
            return self.default
        key = tuple(sorted(wanted.items()))
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = self._models[key] = build_profile_model(self.settings, wanted)
                load = getattr(model, "load", None)
                if callable(load):
                    load()
            return model


def build_bidi_model(settings: AgentSettings) -> BidiModel:
    """Build the bidirectional (`BidiAgent`, `/ws/{session_id}`) model of `settings.model_provider`.

    Raises:
        ValueError: the provider has no bidirectional model (`scripted`, `bedrock` and `openai` do).
        ImportError: the provider's optional dependency is missing.
    """
    provider = settings.model_provider
    if provider == "scripted":
        from .scripted import ScriptedSettings
        from .scripted_bidi import ScriptedBidiModel

        return ScriptedBidiModel(token_delay=ScriptedSettings().token_delay_ms / 1000)
    if provider == "bedrock":
        from strands.bidi.models.bedrock import BedrockNovaSonicModel

        return BedrockNovaSonicModel(model_id=settings.model_id or "amazon.nova-2-5-sonic")
    if provider == "openai":
        from strands.bidi.models.openai.realtime import OpenAIRealtimeModel

        return OpenAIRealtimeModel(transcription_model_id=None, model_id=settings.model_id or "gpt-realtime")
    raise ValueError(f"MODEL_PROVIDER {provider!r} has no bidirectional model; use scripted, bedrock or openai")
