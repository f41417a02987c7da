"""`GET /health`: the process is alive."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..deps import Agents, Settings

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(agents: Agents, settings: Settings) -> dict[str, Any]:
    """The process is alive; reports the model provider, how many agents are cached, whether keys are required."""
    return {
        "status": "ok",
        "model_provider": settings.model_provider,
        "cached_agents": agents.cached_count(),
        "access_control": bool(settings.api_keys),
    }
