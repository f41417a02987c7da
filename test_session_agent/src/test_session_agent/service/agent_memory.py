"""Long-term memory of an actor for the service's agents: Strands' `MemoryManager` on `PostgreSQLMemoryStore`.

Before each user turn's first model call the actor's memories that match the prompt are folded into it; after the
turn `FirstPersonExtractor` stores the user's first-person statements as new memories.
"""

from __future__ import annotations

import httpx
from strands.memory import (
    ExtractionConfig,
    InjectionFormatContext,
    InvocationTrigger,
    MemoryInjectionConfig,
    MemoryManager,
)

from ..memory import FirstPersonExtractor, PostgreSQLMemoryStore

MAX_INJECTED_MEMORIES = 5
INJECTION_HEADING = "Facts the user told you in earlier conversations:"


class ActorMemory:
    """The `MemoryManager` of one actor's agent, and the memory text it injected into the running turn.

    The extractor is the deterministic `FirstPersonExtractor` for every provider (the local 0.5B model's own
    extraction, Strands' `ModelExtractor`, is unreliable); the `search_memory` tool is off: memories reach the
    model by injection, and a profile's tools stay exactly those it names.

    Args:
        actor_id: whose memories are read and written.
        client: the service's HTTP client of the session backend.
    """

    def __init__(self, actor_id: str, client: httpx.Client) -> None:
        self.actor_id = actor_id
        self.injected: str | None = None
        self.store = PostgreSQLMemoryStore(
            actor_id,
            client=client,
            extraction=ExtractionConfig(trigger=InvocationTrigger(), extractor=FirstPersonExtractor()),
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
