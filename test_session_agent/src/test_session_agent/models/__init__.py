"""LLM providers of the agent service, chosen by `MODEL_PROVIDER` (see `build_model`)."""

from .factory import build_model

__all__ = ["build_model"]
