"""Extraction progress stored with the turn (`service/memory_extraction.py`, `_batch.stored_messages`), on
the in-memory backend: what a commit records as pending, and one `finish` for a fresh turn and a handed-over one."""

from __future__ import annotations

from typing import Any

import pytest
from strands.types.content import Message
from strands.types.session import SessionMessage

from test_session_agent._batch import stored_messages
from test_session_agent.memory_text import FirstPersonExtractor
from test_session_agent.observability import AgentMetrics
from test_session_agent.postgresql_session_repository import PostgreSQLSessionRepository
from test_session_agent.service.memory_extraction import TurnExtraction, TurnMessages
from test_session_agent.testing import FakeBackend
from test_session_agent.turns.backend import ServiceBackend

PROMPT: Message = {"role": "user", "content": [{"text": "I live in Lisbon. I have two cats. What now?"}]}
ANSWER: Message = {"role": "assistant", "content": [{"text": "I think you should cook."}]}
FACTS = ["I live in Lisbon", "I have two cats"]


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


def extraction(backend: FakeBackend, metrics: AgentMetrics | None = None, max_facts: int = 20) -> TurnExtraction:
    client = backend.client()
    return TurnExtraction(
        ServiceBackend(client, retries=1),
        PostgreSQLSessionRepository(client=client, retries=1),
        FirstPersonExtractor(max_facts=max_facts),
        metrics or AgentMetrics(),
    )


def not_extracted(metrics: AgentMetrics, reason: str) -> float:
    return metrics.registry.get_sample_value("agent_memories_not_extracted_total", {"reason": reason}) or 0.0


def test_a_turn_without_facts_records_nothing_to_extract(backend: FakeBackend) -> None:
    messages = [(4, {"role": "user", "content": [{"text": "What time is it?"}]}), (5, ANSWER)]
    assert extraction(backend).pending("alice", "default", messages) is None  # type: ignore[arg-type]


def test_a_turn_with_facts_records_its_actor_agent_and_message_ids(backend: FakeBackend) -> None:
    pending = extraction(backend).pending("alice", "default", [(4, PROMPT), (5, ANSWER)])
    assert pending == {"actor_id": "alice", "agent_id": "default", "message_ids": [4, 5]}
    # a fact too long for a memory still records the turn, so its drop is counted once, when it is finished
    long = {"role": "user", "content": [{"text": "I am " + "x" * 20_000}]}
    assert extraction(backend).pending("alice", "default", [(0, long)]) is not None  # type: ignore[list-item]


def test_finish_stores_the_facts_with_their_source_and_marks_the_turn(backend: FakeBackend) -> None:
    pending = {"turn_id": "t1", "actor_id": "alice", "agent_id": "default", "message_ids": [4, 5]}
    assert extraction(backend).finish("s1", pending, [PROMPT, ANSWER]) is True
    stored = backend.memories["alice"]
    assert list(stored) == FACTS
    assert stored["I live in Lisbon"]["source"] == {"session_id": "s1", "agent_id": "default", "message_ids": [4, 5]}
    assert stored["I live in Lisbon"]["metadata"] == {"extractor": "first_person", "role": "user"}
    assert backend.extracted == {("s1", "t1")}


def test_a_handed_over_turn_is_finished_from_its_stored_messages_redactions_included(backend: FakeBackend) -> None:
    redacted = SessionMessage(
        PROMPT, message_id=0, redact_message={"role": "user", "content": [{"text": "[redacted]"}]}
    )
    backend.messages[("s1", "default")] = {0: redacted.to_dict(), 1: SessionMessage(ANSWER, message_id=1).to_dict()}
    pending = {"turn_id": "t1", "actor_id": "alice", "agent_id": "default", "message_ids": [0, 1]}
    assert extraction(backend).finish("s1", pending) is True
    assert list(backend.memories["alice"]) == []  # the redaction is what is read: no fact
    assert backend.extracted == {("s1", "t1")}
    # the same turn finished again (a replay after a crash): nothing is stored twice
    backend.messages[("s1", "default")][0] = SessionMessage(PROMPT, message_id=0).to_dict()
    extraction(backend).finish("s1", pending)
    extraction(backend).finish("s1", pending)
    assert list(backend.memories["alice"]) == FACTS


def test_an_unreachable_backend_leaves_the_turn_pending(backend: FakeBackend) -> None:
    backend.fail = [503]
    pending = {"turn_id": "t1", "actor_id": "alice", "agent_id": "default", "message_ids": [0, 1]}
    assert extraction(backend).finish("s1", pending, [PROMPT, ANSWER]) is False
    assert backend.extracted == set()


def test_a_refused_write_marks_the_turn_without_its_facts_and_counts_them(backend: FakeBackend) -> None:
    metrics = AgentMetrics()
    backend.fail = [409]  # the actor holds its most memories
    pending = {"turn_id": "t1", "actor_id": "alice", "agent_id": "default", "message_ids": [0, 1]}
    assert extraction(backend, metrics).finish("s1", pending, [PROMPT, ANSWER]) is True
    assert backend.extracted == {("s1", "t1")} and backend.memories["alice"] == {}
    assert not_extracted(metrics, "refused") == 2


def test_facts_left_out_are_counted_when_the_turn_is_finished(backend: FakeBackend) -> None:
    metrics = AgentMetrics()
    pending = {"turn_id": "t1", "actor_id": "alice", "agent_id": "default", "message_ids": [0, 1]}
    extraction(backend, metrics, max_facts=1).finish("s1", pending, [PROMPT, ANSWER])
    assert list(backend.memories["alice"]) == FACTS[:1]
    assert not_extracted(metrics, "turn_cap") == 1


def test_the_commit_reads_each_message_as_last_written_of_its_agent_only() -> None:
    def op(kind: str, agent_id: str, message_id: int, text: str, redact: str | None = None) -> dict[str, Any]:
        redaction: Message | None = {"role": "user", "content": [{"text": redact}]} if redact else None
        message = SessionMessage({"role": "user", "content": [{"text": text}]}, message_id, redaction).to_dict()
        return {"op": kind, "agent_id": agent_id, "message": message}

    operations = [
        op("create_message", "default", 3, "b"),
        op("create_message", "default", 2, "a"),
        op("create_message", "other", 4, "elsewhere"),
        op("update_message", "default", 3, "b2"),
        op("update_message", "default", 2, "a", redact="[redacted]"),
        {"op": "update_agent", "agent": {"agent_id": "default"}},
    ]
    stored = stored_messages(operations, "default")
    assert [(i, m["content"][0]["text"]) for i, m in stored] == [(2, "[redacted]"), (3, "b2")]


class _Agent:
    """The parts of a Strands agent `TurnMessages` reads, with a conversation manager that removes messages."""

    def __init__(self, messages: list[Message]) -> None:
        self.agent_id = "default"
        self.messages = messages
        self.conversation_manager = type("Manager", (), {"removed_message_count": 0})()


def test_a_turn_without_a_record_is_read_from_the_agent_even_after_its_window_slid(backend: FakeBackend) -> None:
    agent = _Agent([ANSWER, ANSWER])
    turn = TurnMessages(extraction(backend), "alice", agent, recorded=False)
    turn.begin()
    agent.messages = [ANSWER, PROMPT, ANSWER]  # the turn added two; the window then dropped the oldest
    agent.conversation_manager.removed_message_count = 1
    turn.finish("s1", "t1")
    assert list(backend.memories["alice"]) == FACTS
    assert backend.memories["alice"]["I live in Lisbon"]["source"] is None  # no message rows to name
    assert backend.extracted == set()  # and no turn record to mark


def test_a_recorded_turn_is_finished_with_what_its_commit_recorded(backend: FakeBackend) -> None:
    turn = TurnMessages(extraction(backend), "alice", _Agent([]), recorded=True)
    assert turn.record([(0, PROMPT), (1, ANSWER)]) == {
        "actor_id": "alice",
        "agent_id": "default",
        "message_ids": [0, 1],
    }
    turn.finish("s1", "t1")
    assert list(backend.memories["alice"]) == FACTS and backend.extracted == {("s1", "t1")}
    # without memory nothing is extracted, and nothing is asked of the backend
    requests = len(backend.requests)
    TurnMessages(extraction(backend), None, _Agent([]), recorded=True).finish("s1", "t2")
    assert len(backend.requests) == requests
