"""Long-term memory of an actor for the service's agents: Strands' `MemoryManager` on `PostgreSQLMemoryStore`.

Before each user turn's first model call the actor's memories that match the prompt are folded into it, within a time
budget. Extraction (the user's first-person statements stored as new memories after the turn) is not Strands' (its
buffer and progress live in process memory) but `memory_extraction.TurnExtraction`, its progress stored with the turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
from strands.memory import (
    InjectionFormatContext,
    MemoryEntry,
    MemoryInjectionConfig,
    MemoryManager,
    SearchOptions,
)

from ..exceptions import BackendUnavailableError
from ..memory import PostgreSQLMemoryStore
from ..observability import AgentMetrics
from ..settings import AgentSettings

logger = logging.getLogger(__name__)

MAX_INJECTED_MEMORIES = 5
INJECTION_HEADING = "Facts the user told you in earlier conversations:"


class RecallStore(PostgreSQLMemoryStore):
    """The actor's store as the service's agents use it: a search waits at most `budget` seconds.

    Past the budget (or when the backend times out within it) the search answers no memories, so the model call
    runs without them, and `on_timeout` is called once. Each search request times out at the budget too, so a
    stalled backend never keeps a worker thread for the backend timeout. Other failures propagate (Strands'
    `MemoryManager` logs them and injects nothing).

    Args:
        actor_id: whose memories these are.
        client: the service's HTTP client of the session backend.
        budget: seconds a search may take.
        on_timeout: called for each search past the budget.
        **kwargs: more `PostgreSQLMemoryStore` options.
    """

    def __init__(
        self,
        actor_id: str,
        client: httpx.Client,
        budget: float,
        on_timeout: Callable[[], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(actor_id, client=client, search_timeout=budget, **kwargs)
        self.budget = budget
        self._on_timeout = on_timeout

    async def initialize(self) -> None:
        """Nothing to check: the service validated the actor id, and a memory outage must not fail an agent's build."""

    async def search(self, query: str, options: SearchOptions | None = None) -> list[MemoryEntry]:
        """`PostgreSQLMemoryStore.search` within the budget; past it, no memories (counted)."""
        try:
            async with asyncio.timeout(self.budget):
                return await super().search(query, options)
        except (TimeoutError, BackendUnavailableError) as e:
            if isinstance(e, BackendUnavailableError) and not isinstance(e.__cause__, httpx.TimeoutException):
                raise
            self._on_timeout()
            logger.warning(
                "actor_id=<%s>, budget_seconds=<%s> | memory recall past its budget; answering without memories",
                self.actor_id,
                self.budget,
            )
            return []


class ActorMemory:
    """The `MemoryManager` of one actor's agent (recall only), and the memory text it injected into the running turn.

    The `search_memory` tool is off: memories reach the model by injection, and a profile's tools stay exactly those
    it names. Strands' extraction is off: the turn runner extracts (`TurnExtraction`), exactly once per turn.

    Args:
        actor_id: whose memories are read (and, by the turn runner, written).
        client: the service's HTTP client of the session backend.
        settings: the service's settings (`MEMORY_RECALL_BUDGET_SECONDS`).
        metrics: where recalls past the budget are counted.
    """

    def __init__(self, actor_id: str, client: httpx.Client, settings: AgentSettings, metrics: AgentMetrics) -> None:
        self.actor_id = actor_id
        self.injected: str | None = None
        self.store = RecallStore(
            actor_id, client, settings.memory_recall_budget_seconds, metrics.memory_recall_timeouts.inc
        )
        self.manager = MemoryManager(
            stores=[self.store],
            search_tool_config=False,
            injection=MemoryInjectionConfig(max_entries=MAX_INJECTED_MEMORIES, format=self._format),
        )

    def _format(self, context: InjectionFormatContext) -> str:
        # Plain lines rather than Strands' XML block: small local models follow them better.
        self.injected = "\n".join([INJECTION_HEADING, *(f"- {entry.content}" for entry in context.entries)])
        return self.injected

    def begin_turn(self) -> None:
        """Forget what was injected into the previous turn."""
        self.injected = None
