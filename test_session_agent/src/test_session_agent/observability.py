"""Metrics (`GET /metrics`, Prometheus text format) and structured logs of the agent service.

HTTP counts and latencies per route come from `prometheus-fastapi-instrumentator`; the turn code counts turns by
outcome, agent cache hits and backend errors by kind. Log records carry the turn's session, actor and device ids
(context variables, copied onto the worker thread of a turn); `LOG_FORMAT=json` writes JSON lines.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from service_kit.logs import LOG_CONTEXT as LOG_CONTEXT
from service_kit.logs import configure_logging as configure_logging
from service_kit.logs import log_context as log_context
from service_kit.metrics import HttpMetrics


class AgentMetrics(HttpMetrics):
    """The agent service's metrics, in a registry of their own (one per app: apps built in one process never clash).

    `cache_size` reads the agent cache at scrape time (the agent facade sets its function).
    """

    def __init__(self) -> None:
        super().__init__(
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            duration_help="Time to answer a request, to the end of its body (a streamed turn: its whole stream), by "
            "route template and method (seconds).",
        )
        self.turns = Counter(
            "agent_turns",
            "Turns by outcome: ok, replayed (Idempotency-Key), stateless (backend down), or the error's kind.",
            ["outcome"],
            registry=self.registry,
        )
        self.turn_seconds = Histogram(
            "agent_turn_duration_seconds", "Wall time of managed turns, waiting excluded.", registry=self.registry
        )
        self.cache_lookups = Counter(
            "agent_cache_lookups", "Agent cache lookups at the start of a turn.", ["result"], registry=self.registry
        )
        self.speculative_turns = Counter(
            "agent_speculative_turns",
            "Turns on a cached agent started before their lease was confirmed, by outcome (confirmed: the lease "
            "showed the agent current; mispredicted: busy, stale, routed or a replay, so the turn ran again).",
            ["outcome"],
            registry=self.registry,
        )
        self.backend_errors = Counter(
            "agent_backend_errors", "Session backend failures met by turns, by kind.", ["kind"], registry=self.registry
        )
        self.memory_recall_timeouts = Counter(
            "agent_memory_recall_timeouts",
            "Memory recalls before a model call that ran past MEMORY_RECALL_BUDGET_SECONDS (the call ran without "
            "memories).",
            registry=self.registry,
        )
        self.memories_not_extracted = Counter(
            "agent_memories_not_extracted",
            "Facts of a turn not stored as memories, by reason: turn_cap (past MEMORY_MAX_EXTRACTED_PER_TURN), "
            "too_long (longer than a memory may be) or refused (the backend refused the turn's write, e.g. the actor "
            "holds its most memories).",
            ["reason"],
            registry=self.registry,
        )
        self.turns_in_progress = Gauge(
            "agent_turns_in_progress", "Turns running or waiting for their session now.", registry=self.registry
        )
        self.turns_refused = Counter(
            "agent_turns_refused",
            "Turns refused at admission, before any work: full (turns running and queued at their bounds: 503) or "
            "actor (one actor over its own bound: 429).",
            ["reason"],
            registry=self.registry,
        )
        self.turns_queued = Gauge(
            "agent_turns_queued", "Admitted turns waiting for a running place now.", registry=self.registry
        )
        self.turn_queue_seconds = Histogram(
            "agent_turn_queue_seconds",
            "Time queued turns waited for a running place (seconds).",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.cache_size = Gauge("agent_cache_size", "Agents held in memory.", registry=self.registry)
