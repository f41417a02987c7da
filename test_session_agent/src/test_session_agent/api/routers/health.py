"""`GET /health`: the process is alive."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..deps import Settings

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(settings: Settings) -> dict[str, Any]:
    """The process is alive; reports the model provider and whether keys are required.

    No usage figures: `/health` is open to anyone; `/metrics`, behind the key, has those.
    """
    return {"status": "ok", "model_provider": settings.model_provider, "access_control": bool(settings.api_keys)}
