"""Long-term memory of an actor for the service's agents: Strands' `MemoryManager` on `PostgreSQLMemoryStore`.

Before each user turn's first model call the actor's memories that match the prompt are folded into it, within a time
budget; after the turn `FirstPersonExtractor` stores the user's first-person statements as new memories.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
from strands.memory import (
    ExtractionConfig,
    InjectionFormatContext,
    InvocationTrigger,
    MemoryEntry,
    MemoryInjectionConfig,
    MemoryManager,
    SearchOptions,
)

from ..exceptions import BackendRequestError, BackendUnavailableError
from ..memory import PostgreSQLMemoryStore
from ..memory_text import FirstPersonExtractor
from ..observability import AgentMetrics
from ..session_manager import PostgreSQLSessionManager
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
        source: Callable[[], dict[str, Any] | None] = lambda: None,
        **kwargs: Any,
    ) -> None:
        super().__init__(actor_id, client=client, search_timeout=budget, **kwargs)
        self.budget = budget
        self._on_timeout = on_timeout
        self._source = source

    async def add(
        self, content: str, metadata: dict[str, Any] | None = None, *, source: dict[str, Any] | None = None
    ) -> str:
        """`PostgreSQLMemoryStore.add`, recording the running turn's messages as the source (when there is one)."""
        source = source if source is not None else self._source()
        try:
            return await super().add(content, metadata, source=source)
        except BackendRequestError as e:
            if source is None or e.status != 422:
                raise
            # The source's session is gone (deleted meanwhile): keep the fact, without provenance.
            logger.warning("actor_id=<%s>, error=<%s> | memory stored without its source", self.actor_id, e)
            return await super().add(content, metadata)

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
    """The `MemoryManager` of one actor's agent, and the memory text it injected into the running turn.

    The extractor is the deterministic `FirstPersonExtractor` for every provider (the local 0.5B model's own
    extraction, Strands' `ModelExtractor`, is unreliable); the `search_memory` tool is off: memories reach the
    model by injection, and a profile's tools stay exactly those it names.

    Args:
        actor_id: whose memories are read and written.
        client: the service's HTTP client of the session backend.
        settings: the service's settings (`MEMORY_RECALL_BUDGET_SECONDS`, `MEMORY_MAX_EXTRACTED_PER_TURN`).
        metrics: where recalls past the budget and facts not extracted are counted.
        session: the agent's session manager and agent id, when its messages are rows (`SESSION_MANAGER=repository`):
            extracted memories then record the session, agent and the turn's message ids as their source.
    """

    def __init__(
        self,
        actor_id: str,
        client: httpx.Client,
        settings: AgentSettings,
        metrics: AgentMetrics,
        session: tuple[PostgreSQLSessionManager, str] | None = None,
    ) -> None:
        self.actor_id = actor_id
        self.injected: str | None = None
        self._session = session
        self._turn_start: int | None = None
        self.store = RecallStore(
            actor_id,
            client,
            settings.memory_recall_budget_seconds,
            metrics.memory_recall_timeouts.inc,
            self.source,
            extraction=ExtractionConfig(
                trigger=InvocationTrigger(),
                extractor=FirstPersonExtractor(
                    max_facts=settings.memory_max_extracted_per_turn,
                    on_dropped=lambda reason, count: metrics.memories_not_extracted.labels(reason=reason).inc(count),
                ),
            ),
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
        """Forget what was injected into the previous turn; the turn's messages start after the agent's newest."""
        self.injected = None
        if self._session is not None:
            manager, agent_id = self._session
            latest = manager.latest_message_id(agent_id)
            self._turn_start = 0 if latest is None else latest + 1

    def source(self) -> dict[str, Any] | None:
        """`{session_id, agent_id, message_ids}` of the running turn's messages so far; None without a session."""
        if self._session is None or self._turn_start is None:
            return None
        manager, agent_id = self._session
        latest = manager.latest_message_id(agent_id)
        if latest is None or latest < self._turn_start:
            return None
        ids = list(range(self._turn_start, latest + 1))
        return {"session_id": manager.session_id, "agent_id": agent_id, "message_ids": ids}
