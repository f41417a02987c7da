"""Route of an actor's erasure (`DELETE /v1/actors/{actor_id}`)."""

from __future__ import annotations

from ..schemas.erasure import ErasureReceipt
from .deps import ActorId, Erasures, v1_router

router = v1_router("/actors", tags=["actors"])


@router.delete("/{actor_id}", response_model=ErasureReceipt)
async def erase_actor(actor_id: ActorId, store: Erasures) -> ErasureReceipt:
    """Erase everything of the actor in one transaction and answer the receipt (idempotent: again, all counts 0)."""
    return ErasureReceipt.model_validate(await store.erase_actor(actor_id))
