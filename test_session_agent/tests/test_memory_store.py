"""`PostgreSQLMemoryStore` on a real backend: the `MemoryStore` contract (the behaviour Strands' own store tests check
of `TestMemoryStore`, which is the reference), and an `Agent` with `MemoryManager`: memories injected before the model
call, facts extracted after it, recalled in a later session, never across actors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from strands import Agent
from strands.memory import ExtractionConfig, InvocationTrigger, MemoryManager
from strands.types.content import Message, Messages

from test_session_agent import (
    BackendRequestError,
    BackendUnavailableError,
    FirstPersonExtractor,
    PostgreSQLMemoryStore,
    PostgreSQLSessionManager,
)
from test_session_agent.memory_text import MAX_QUERY_TERMS, query_terms
from test_session_agent.models.scripted import ScriptedModel

pytestmark = pytest.mark.integration


def new_actor() -> str:
    return f"actor-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_store(backend_url: str) -> Iterator[Any]:
    """Factory of stores on the module's backend, each for a new actor unless one is given; closed afterwards."""
    stores: list[PostgreSQLMemoryStore] = []

    def make(actor_id: str | None = None, **config: Any) -> PostgreSQLMemoryStore:
        store = PostgreSQLMemoryStore(actor_id or new_actor(), base_url=backend_url, **config)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


# The MemoryStore contract


async def test_is_a_strands_memory_store_with_every_sink(make_store: Any) -> None:
    from strands.memory.types import _has_method

    store = make_store()
    for method in ("search", "add", "add_messages", "initialize", "get_tools"):
        assert _has_method(store, method), method
    assert (store.name, store.writable, store.extraction, store.get_tools()) == ("postgresql", True, None, [])
    await store.initialize()


async def test_add_returns_an_id_and_dedupes_identical_content(make_store: Any) -> None:
    store = make_store()
    first = await store.add("user prefers dark mode", {"source": "user"})
    assert uuid.UUID(first)
    assert await store.add("user prefers dark mode") == first
    [entry] = await store.search("dark mode preferences")
    assert entry.content == "user prefers dark mode"
    assert entry.metadata["source"] == "user" and entry.metadata["memory_id"] == first
    assert 0 < entry.metadata["score"] <= 1


async def test_add_refuses_blank_content_and_read_only_stores(make_store: Any) -> None:
    with pytest.raises(ValueError, match="content must not be empty"):
        await make_store().add("   ")
    read_only = make_store(writable=False)
    with pytest.raises(ValueError, match="not writable"):
        await read_only.add("fact")
    with pytest.raises(ValueError, match="not writable"):
        await read_only.add_messages([{"role": "user", "content": [{"text": "I like tea"}]}])


def test_refuses_a_blank_name(make_store: Any) -> None:
    # MemoryManager addresses stores by name (its tools take one): a blank name fails here, not in a tool call.
    with pytest.raises(ValueError, match="name must not be empty"):
        make_store(name="   ")


def test_concurrent_adds_all_kept_across_event_loops(make_store: Any) -> None:
    # A synchronous Agent runs each invocation on a fresh event loop; the store is reused across them.
    store = make_store()

    async def batch(tag: str) -> None:
        await asyncio.gather(*(store.add(f"{tag} fact number {index}") for index in range(5)))

    asyncio.run(batch("first"))
    asyncio.run(batch("second"))
    assert len(asyncio.run(store.list_recent(limit=100))) == 10


async def test_backend_refusals_surface_as_request_errors(make_store: Any) -> None:
    with pytest.raises(BackendRequestError) as refused:
        await make_store().add("x" * 16_385)
    assert refused.value.status == 422
    with pytest.raises(BackendRequestError) as bad_actor:
        await make_store("not an actor id").initialize()
    assert bad_actor.value.status == 422


async def test_unreachable_backend_is_unavailable() -> None:
    from session_backend.testing import free_port

    store = PostgreSQLMemoryStore(new_actor(), base_url=f"http://127.0.0.1:{free_port()}", retries=1)
    with pytest.raises(BackendUnavailableError):
        await store.initialize()
    with pytest.raises(BackendUnavailableError):
        await store.search("anything")
    store.close()


async def test_search_validates_and_caps_max_search_results(make_store: Any) -> None:
    store = make_store()
    for content in ("alpha match", "beta match", "gamma match"):
        await store.add(content)
    with pytest.raises(ValueError, match="max_search_results"):
        await store.search("q", {"max_search_results": 0})
    assert len(await store.search("match", {"max_search_results": 2})) == 2
    assert len(await store.search("match")) == 3
    assert len(await make_store(store.actor_id, max_search_results=1).search("match")) == 1
    with pytest.raises(ValueError, match="max_search_results"):
        make_store(max_search_results=101)


async def test_query_without_words_finds_nothing(make_store: Any) -> None:
    store = make_store()
    await store.add("user prefers dark mode")
    assert await store.search("") == []
    assert await store.search("   ...  ") == []
    assert await store.search("the of and") == []


async def test_ranks_higher_overlap_first_and_excludes_no_overlap(make_store: Any) -> None:
    store = make_store()
    await store.add("the cat sat on the mat")
    await store.add("the cat chased the dog in the park")
    await store.add("a completely unrelated note")
    results = await store.search("cat dog park")
    assert [r.content for r in results] == ["the cat chased the dog in the park", "the cat sat on the mat"]
    assert results[0].metadata["score"] > results[1].metadata["score"]
    strict = make_store(store.actor_id, match="all")
    assert [r.content for r in await strict.search("cat dog park")] == ["the cat chased the dog in the park"]


async def test_breaks_ties_by_recency(make_store: Any) -> None:
    store = make_store()
    await store.add("coffee is great")
    await store.add("coffee is bitter")
    assert [r.content for r in await store.search("coffee")] == ["coffee is bitter", "coffee is great"]


async def test_non_ascii_words_match_whole(make_store: Any) -> None:
    store = make_store()
    await store.add("the café in 日本 is naïve")
    assert len(await store.search("café")) == 1
    assert len(await store.search("日本")) == 1


async def test_add_messages_stores_user_text_once(make_store: Any) -> None:
    store = make_store()
    messages: list[Message] = [
        {"role": "user", "content": [{"text": "I moved to Lisbon last spring"}]},
        {"role": "assistant", "content": [{"text": "Lisbon is lovely"}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t", "status": "success", "content": []}}]},
        {"role": "user", "content": [{"text": "My dog is called Biscuit"}, {"text": "he is three"}]},
    ]
    ids = await store.add_messages(messages)
    assert len(ids) == 2
    assert await store.add_messages(messages) == ids  # a retried batch stores nothing twice
    recent = await store.list_recent()
    assert {e.content for e in recent} == {"I moved to Lisbon last spring", "My dog is called Biscuit\nhe is three"}
    assert all(e.metadata["role"] == "user" for e in recent)


async def test_delete_and_clear(make_store: Any) -> None:
    store, other = make_store(), make_store()
    keep = await store.add("I like jazz")
    gone = await store.add("I like techno")
    theirs = await other.add("I like opera")
    assert await store.delete(gone) is True
    assert await store.delete(gone) is False
    assert await store.delete(theirs) is False  # another actor's memory is not this actor's to delete
    assert [e.metadata["memory_id"] for e in await store.list_recent()] == [keep]
    await store.clear()
    assert await store.list_recent() == []
    assert [e.content for e in await other.list_recent()] == ["I like opera"]


async def test_memory_manager_search_and_add(make_store: Any) -> None:
    store = make_store()
    await store.add("user prefers dark mode")
    manager = MemoryManager(stores=[store], add_tool_config=True)
    [hit] = await manager.search("dark mode")
    assert hit.store_name == "postgresql"
    await manager.add("user likes coffee")
    assert [e.content for e in await store.search("coffee")] == ["user likes coffee"]


@pytest.fixture
def recorded(backend_url: str) -> Iterator[tuple[httpx.Client, list[httpx.Request]]]:
    """A client of the module's backend that records every request it sends."""
    sent: list[httpx.Request] = []
    client = httpx.Client(base_url=backend_url, event_hooks={"request": [sent.append]})
    yield client, sent
    client.close()


def test_long_queries_are_reduced_to_their_terms() -> None:
    assert query_terms("Where do I live?") == "Where do I live?"
    prompt = "Where does my greyhound sleep? " * 100 + "x" * 5_000 + " " + " ".join(f"w{i:03}" for i in range(300))
    terms = query_terms(prompt)
    assert len(terms) <= 2_000 and len(terms.split()) == MAX_QUERY_TERMS
    assert "greyhound" in terms.split() and "x" * 5_000 not in terms  # the longest words; no blob as a term


async def test_search_sends_the_default_ranking_and_long_prompts_as_terms(
    make_store: Any, recorded: tuple[httpx.Client, list[httpx.Request]]
) -> None:
    client, sent = recorded
    store = make_store(client=client)
    await store.add("I adopted a greyhound called Pixel")
    prompt = "Tell me again what my greyhound is called, please, I keep forgetting it. " * 60
    assert len(prompt) > 2_000
    [hit] = await store.search(prompt)  # not refused with 422 for its length
    assert hit.content == "I adopted a greyhound called Pixel"
    search = [r for r in sent if r.method == "GET"][-1]
    assert "match" not in search.url.params  # the backend's default ranking (hybrid where it has pgvector)
    assert len(search.url.params["query"]) <= 2_000 and "greyhound" in search.url.params["query"]


async def test_a_timed_out_search_is_never_sent_again(
    make_store: Any, recorded: tuple[httpx.Client, list[httpx.Request]], database_url: str
) -> None:
    client, sent = recorded
    store = make_store(client=client, search_timeout=0.5)
    await store.add("I drink rooibos tea")
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            # Searches stall on the lock: this client gives up at its timeout; without one the backend cancels the
            # statement at its own search timeout (503). Neither is sent again.
            await conn.execute("LOCK TABLE actor_memories IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(BackendUnavailableError):
                await store.search("tea")
            with pytest.raises(BackendUnavailableError, match="503"):
                await make_store(store.actor_id, client=client).search("tea")
    finally:
        await conn.close()
    assert [r.method for r in sent].count("GET") == 2
    assert [e.content for e in await store.search("tea")] == ["I drink rooibos tea"]


# Extraction


async def test_first_person_extractor() -> None:
    messages: list[Message] = [
        {
            "role": "user",
            "content": [
                {"text": "Hi! I live in Lisbon. My dog is called Biscuit! What time is it? I see. I'm a nurse"},
                {"text": "I wonder if it rains?\nI have two sisters."},
            ],
        },
        {"role": "assistant", "content": [{"text": "I think you live in Lisbon."}]},
        {"role": "user", "content": [{"text": "I live in Lisbon."}]},
    ]
    results = await FirstPersonExtractor().extract(messages)
    assert [r.content for r in results] == [
        "I live in Lisbon",
        "My dog is called Biscuit",
        "I'm a nurse",
        "I have two sisters",
    ]
    assert results[0].metadata == {"extractor": "first_person", "role": "user"}


# An Agent with MemoryManager


class RecordingScript:
    """Scripted model behaviour: records the conversation of every model call and answers from it."""

    def __init__(self) -> None:
        self.calls: list[Messages] = []

    def __call__(self, messages: Messages) -> str:
        self.calls.append(messages)
        return "noted"

    def last_user_text(self) -> str:
        last = [m for m in self.calls[-1] if m["role"] == "user"][-1]
        return "\n".join(block["text"] for block in last["content"] if "text" in block)


def memory_agent(store: PostgreSQLMemoryStore, script: RecordingScript, **kwargs: Any) -> Agent:
    return Agent(
        model=ScriptedModel(script),
        memory_manager=MemoryManager(stores=[store]),
        callback_handler=None,
        **kwargs,
    )


def extracting_store(make_store: Any, actor_id: str | None = None) -> PostgreSQLMemoryStore:
    extraction = ExtractionConfig(trigger=InvocationTrigger(), extractor=FirstPersonExtractor())
    store: PostgreSQLMemoryStore = make_store(actor_id, extraction=extraction)
    return store


def test_relevant_memories_reach_the_model_and_not_the_history(make_store: Any) -> None:
    store = make_store()
    seed = [f"Reminder {i}: the weekly report goes to finance" for i in range(50)]
    ids = asyncio.run(store.add_messages([{"role": "user", "content": [{"text": t}]} for t in seed]))
    assert len(ids) == 50
    asyncio.run(store.add("My favourite drink is jasmine green tea"))

    script = RecordingScript()
    agent = memory_agent(store, script)
    agent("What is my favourite drink?")

    seen = script.last_user_text()
    assert seen.startswith("What is my favourite drink?") and "<memory>" in seen
    assert "jasmine green tea" in seen and "weekly report" not in seen
    # injection is per call: the durable history holds the prompt only
    assert agent.messages[0]["content"] == [{"text": "What is my favourite drink?"}]


def test_facts_are_extracted_after_the_turn_and_recalled_in_a_later_session(make_store: Any, backend_url: str) -> None:
    actor_id = new_actor()
    first = RecordingScript()
    agent = memory_agent(
        extracting_store(make_store, actor_id),
        first,
        session_manager=PostgreSQLSessionManager(f"s-{uuid.uuid4().hex[:8]}", base_url=backend_url),
    )
    agent("Hello! I live in Lisbon. My dog is called Biscuit. What should I cook tonight?")
    assert "<memory>" not in first.last_user_text()  # nothing to recall yet

    # the synchronous Agent awaited the extraction before returning
    stored = asyncio.run(make_store(actor_id).list_recent())
    assert sorted(e.content for e in stored) == ["I live in Lisbon", "My dog is called Biscuit"]
    assert all(e.metadata["extractor"] == "first_person" for e in stored)

    # a new session of the same actor recalls them
    later = RecordingScript()
    memory_agent(
        extracting_store(make_store, actor_id),
        later,
        session_manager=PostgreSQLSessionManager(f"s-{uuid.uuid4().hex[:8]}", base_url=backend_url),
    )("What is the name of my dog?")
    assert "My dog is called Biscuit" in later.last_user_text()

    # another actor asking the same recalls nothing
    stranger = RecordingScript()
    memory_agent(extracting_store(make_store), stranger)("What is the name of my dog?")
    assert "<memory>" not in stranger.last_user_text() and "Biscuit" not in stranger.last_user_text()


def test_extraction_without_extractor_stores_raw_user_messages(make_store: Any) -> None:
    store = make_store(extraction=ExtractionConfig(trigger=InvocationTrigger()))
    memory_agent(store, RecordingScript())("Please remember that the wifi password is on the fridge")
    recent = asyncio.run(store.list_recent())
    assert [e.content for e in recent] == ["Please remember that the wifi password is on the fridge"]


async def test_extraction_is_bounded_per_turn_and_skips_facts_too_long() -> None:
    dropped: list[tuple[str, int]] = []
    extractor = FirstPersonExtractor(max_facts=3, on_dropped=lambda reason, count: dropped.append((reason, count)))
    text = " ".join(f"I like item {i}." for i in range(50)) + " I wrote " + "very " * 4_000 + "long words."
    results = await extractor.extract([{"role": "user", "content": [{"text": text}]}])
    assert [r.content for r in results] == ["I like item 0", "I like item 1", "I like item 2"]
    assert dropped == [("too_long", 1), ("turn_cap", 47)]


def test_one_fact_too_long_does_not_fail_the_batch_nor_come_back(
    make_store: Any, recorded: tuple[httpx.Client, list[httpx.Request]]
) -> None:
    client, sent = recorded
    extraction = ExtractionConfig(trigger=InvocationTrigger(), extractor=FirstPersonExtractor())
    store = make_store(client=client, extraction=extraction)
    raw = make_store(store.actor_id, client=client, extraction=ExtractionConfig(trigger=InvocationTrigger()))
    agent = memory_agent(store, RecordingScript())
    agent("I live in Lisbon. I wrote " + "very " * 4_000 + "long words.")
    agent("I have a cat called Tom.")
    assert sorted(e.content for e in asyncio.run(store.list_recent())) == [
        "I have a cat called Tom",
        "I live in Lisbon",
    ]
    # one add per fact, each once: the first turn's batch was not re-sent after the second
    assert [r.method for r in sent if r.url.path.endswith("/memories")].count("POST") == 2
    # raw messages (no extractor): a message too long for a memory is skipped, the others stored
    messages: list[Message] = [
        {"role": "user", "content": [{"text": "x" * 16_385}]},
        {"role": "user", "content": [{"text": "Remember the blue door"}]},
    ]
    assert len(asyncio.run(raw.add_messages(messages))) == 1


def test_the_opt_in_forget_tool_deletes_what_it_names(make_store: Any) -> None:
    assert make_store().get_tools() == []  # off by default
    store = make_store(forget_tool=True)
    for fact in ("My dog is called Biscuit", "My cat is called Biscuit too", "I live in Lisbon"):
        asyncio.run(store.add(fact))
    agent = Agent(model=ScriptedModel(), memory_manager=MemoryManager(stores=[store]), callback_handler=None)
    assert "forget_memory" in agent.tool_names
    agent('use forget_memory {"about": "dog Biscuit"}')
    assert sorted(e.content for e in asyncio.run(store.list_recent())) == [
        "I live in Lisbon",
        "My cat is called Biscuit too",
    ]
