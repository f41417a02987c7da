"""Long-term memories per actor (`/v1/actors/{actor_id}/memories`): every route and error, full-text ranking, and
isolation between actors, on a real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"

# Sixty memories about other things; several share one word with the questions below.
DISTRACTORS = [
    *(f"Meeting number {i} with the design team is on a Tuesday" for i in range(20)),
    *(f"The user's cousin {i} drinks coffee every morning" for i in range(15)),
    *(f"Project {i} deadline moved to next quarter" for i in range(15)),
    "My favourite colour is dark green",
    "I prefer window seats on long flights",
    "My dog is called Biscuit",
    "I am allergic to peanuts",
    "The office moved to the third floor",
    "I drink water with lemon after running",
    "Tea ceremonies were a topic in the book club",
    "My sister lives in Porto",
    "I started learning the piano last year",
    "The favourite restaurant of the team closed",
]
RELEVANT = "My favourite drink is jasmine green tea, no sugar"


def actor() -> str:
    return f"actor-{uuid.uuid4().hex[:10]}"


def base(actor_id: str) -> str:
    return f"/v1/actors/{actor_id}/memories"


def add(client: TestClient, actor_id: str, content: str, **extra: Any) -> dict[str, Any]:
    r = client.post(base(actor_id), json={"content": content, **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def search(client: TestClient, actor_id: str, **params: Any) -> list[dict[str, Any]]:
    r = client.get(base(actor_id), params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def assert_problem(r: Any, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["status"] == status


def test_add_returns_the_memory(client: TestClient) -> None:
    actor_id = actor()
    body = add(client, actor_id, "I live in Lisbon", metadata={"source": "chat", "turn": 3})
    assert set(body) == {"memory_id", "content", "metadata", "source", "created_at"}
    assert body["source"] is None
    assert uuid.UUID(body["memory_id"]) and body["created_at"].endswith("+00:00")
    assert (body["content"], body["metadata"]) == ("I live in Lisbon", {"source": "chat", "turn": 3})
    [listed] = search(client, actor_id)
    assert listed == body | {"score": None}


def test_identical_content_is_stored_once_and_answered_200(client: TestClient) -> None:
    actor_id = actor()
    first = add(client, actor_id, "I live in Lisbon")
    r = client.post(base(actor_id), json={"content": "I live in Lisbon", "metadata": {"other": True}})
    assert r.status_code == 200 and r.json() == first
    assert len(search(client, actor_id)) == 1
    # the same content for another actor is that actor's own memory
    assert add(client, actor(), "I live in Lisbon")["memory_id"] != first["memory_id"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"content": ""},
        {"content": "   \n\t"},
        {"content": 42},
        {"content": "x" * 16_385},
        {"content": "ok", "metadata": "not an object"},
        {"content": "ok", "metadata": {"blob": "x" * 16_400}},
        # reserved for sealed values: metadata is stored in clear beside the sealed content (encryption at rest)
        {"content": "ok", "metadata": {"note": "~sb1~AAAAAAAAAAAAAAAAAAAAAA~AAAA"}},
        {"content": "ok", "metadata": {"tags": [{"~sb1~key": 1}]}},
    ],
)
def test_invalid_memories_are_422_and_store_nothing(client: TestClient, body: dict[str, Any]) -> None:
    actor_id = actor()
    assert_problem(client.post(base(actor_id), json=body), 422)
    assert_problem(client.post(f"{base(actor_id)}/batch", json={"memories": [{"content": "fine"}, body]}), 422)
    assert search(client, actor_id) == []


@pytest.mark.parametrize(
    "raw",
    [
        b'{"content": "lone \\ud800 surrogate"}',
        b'{"content": "ok", "metadata": {"\\udc00": 1}}',
        b'{"content": "nul \\u0000 byte"}',
    ],
)
def test_text_and_json_postgresql_cannot_store_are_422(client: TestClient, raw: bytes) -> None:
    actor_id = actor()
    assert_problem(client.post(base(actor_id), content=raw, headers={"Content-Type": "application/json"}), 422)
    assert search(client, actor_id) == []


def test_content_of_the_maximum_size_is_accepted(client: TestClient) -> None:
    actor_id = actor()
    assert len(add(client, actor_id, "word " * 3276 + "end")["content"]) == 16_383


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    actor_id = actor()
    assert_problem(client.post(base(actor_id), json={"content": "x" * 70_000}), 413)
    assert search(client, actor_id) == []


def test_bad_actor_id_is_422_on_every_route(client: TestClient) -> None:
    bad = "/v1/actors/bad%20actor/memories"
    assert_problem(client.post(bad, json={"content": "x"}), 422)
    assert_problem(client.post(f"{bad}/batch", json={"memories": [{"content": "x"}]}), 422)
    assert_problem(client.get(bad), 422)
    assert_problem(client.delete(bad), 422)
    assert_problem(client.delete(f"{bad}/{uuid.uuid4()}"), 422)
    assert_problem(client.get("/v1/actors/../memories"), 404)  # normalized away: not a memories route


def test_batch_stores_in_order_and_dedupes(client: TestClient) -> None:
    actor_id = actor()
    existing = add(client, actor_id, "I live in Lisbon")
    contents = ["I live in Lisbon", "I like jazz", "I like jazz", "My cat is Miso"]
    r = client.post(f"{base(actor_id)}/batch", json={"memories": [{"content": c} for c in contents]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["created"] == 2
    assert [m["content"] for m in body["items"]] == contents
    assert body["items"][0] == existing and body["items"][1] == body["items"][2]
    assert len(search(client, actor_id)) == 3
    assert_problem(client.post(f"{base(actor_id)}/batch", json={"memories": []}), 422)
    too_many = {"memories": [{"content": f"m{i}"} for i in range(1001)]}
    assert_problem(client.post(f"{base(actor_id)}/batch", json=too_many), 422)


def test_without_query_newest_first_with_limit(client: TestClient) -> None:
    actor_id = actor()
    ids = [add(client, actor_id, f"fact number {i}")["memory_id"] for i in range(12)]
    items = search(client, actor_id)
    assert [m["memory_id"] for m in items] == ids[::-1][:10]  # default limit 10
    assert all(m["score"] is None for m in items)
    assert len(search(client, actor_id, limit=100)) == 12
    assert [m["memory_id"] for m in search(client, actor_id, limit=3, query="  ")] == ids[::-1][:3]


def test_search_parameters_are_validated(client: TestClient) -> None:
    actor_id = actor()
    for params in ({"limit": 0}, {"limit": 101}, {"match": "some"}, {"query": "q" * 2001}):
        assert_problem(client.get(base(actor_id), params=params), 422)


def test_relevant_memory_ranks_first_among_sixty(client: TestClient) -> None:
    actor_id = actor()
    r = client.post(f"{base(actor_id)}/batch", json={"memories": [{"content": c} for c in DISTRACTORS]})
    assert r.json()["created"] == len(DISTRACTORS)
    relevant = add(client, actor_id, RELEVANT)
    for c in DISTRACTORS[:5]:  # newer than the relevant one: recency must not win over relevance
        client.post(base(actor_id), json={"content": f"{c} (again)"})

    # a whole question, any term: the memory sharing the most terms comes first
    hits = search(client, actor_id, query="What is my favourite drink? Green tea or coffee?", match="any")
    assert hits[0]["memory_id"] == relevant["memory_id"]
    assert 0 < hits[-1]["score"] <= hits[0]["score"] <= 1
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert len(hits) == 10

    # web-search syntax, all terms
    [hit] = search(client, actor_id, query="favourite drink", match="all")
    assert hit["memory_id"] == relevant["memory_id"] and hit["score"] > 0
    assert search(client, actor_id, query='"green tea"', match="all")[0]["memory_id"] == relevant["memory_id"]
    assert relevant["memory_id"] not in {
        h["memory_id"] for h in search(client, actor_id, query="green -jasmine", match="all")
    }
    assert {h["content"] for h in search(client, actor_id, query="peanuts or piano", match="all")} == {
        "I am allergic to peanuts",
        "I started learning the piano last year",
    }
    # stemming: "drinks" and "drinking" find "drink"
    assert relevant["memory_id"] in {
        h["memory_id"] for h in search(client, actor_id, query="drinking", limit=100, match="all")
    }


def test_a_rare_word_outweighs_words_every_memory_holds(client: TestClient) -> None:
    actor_id = actor()
    for thing in ("tea", "chess", "jazz", "tennis", "poetry", "a walk"):
        add(client, actor_id, f"Caroline likes {thing} in the park")
    rare = add(client, actor_id, "I moved to Lisbon")

    # "caroline" and "park" are in six memories, "lisbon" in one: holding it weighs more than holding both others
    [first, *others] = search(client, actor_id, query="Caroline park Lisbon", match="any")
    assert first["memory_id"] == rare["memory_id"]
    assert len(others) == 6 and first["score"] > 0.5 > others[0]["score"] == others[-1]["score"] > 0


def test_queries_without_searchable_words_find_nothing(client: TestClient) -> None:
    actor_id = actor()
    add(client, actor_id, "I live in Lisbon")
    for query in ("the and of", "-lisbon", "!!!"):
        for match in ("all", "any", "hybrid"):  # hybrid: full text on this server (no pgvector)
            assert search(client, actor_id, query=query, match=match) == []


def test_actors_are_isolated(client: TestClient) -> None:
    alice, bob = actor(), actor()
    secret = add(client, alice, "My password hint is the name of my first pet")
    add(client, bob, "My first car was red")

    assert [m["content"] for m in search(client, bob)] == ["My first car was red"]
    assert [m["content"] for m in search(client, bob, query="password hint pet", match="any")] == []
    assert [m["content"] for m in search(client, bob, query="first", match="any")] == ["My first car was red"]

    # bob cannot delete alice's memory by its id: it is not his
    assert_problem(client.delete(f"{base(bob)}/{secret['memory_id']}"), 404)
    r = client.delete(base(bob))
    assert r.status_code == 204
    assert search(client, bob) == []
    assert [m["memory_id"] for m in search(client, alice)] == [secret["memory_id"]]


def test_delete_one_then_404(client: TestClient) -> None:
    actor_id = actor()
    keep = add(client, actor_id, "I live in Lisbon")
    gone = add(client, actor_id, "I like jazz")
    r = client.delete(f"{base(actor_id)}/{gone['memory_id']}")
    assert r.status_code == 204 and r.content == b""
    assert_problem(client.delete(f"{base(actor_id)}/{gone['memory_id']}"), 404)
    assert_problem(client.delete(f"{base(actor_id)}/{uuid.uuid4()}"), 404)
    assert_problem(client.delete(f"{base(actor_id)}/not-a-uuid"), 422)
    assert [m["memory_id"] for m in search(client, actor_id)] == [keep["memory_id"]]
    # content deleted may be stored again, as a new memory
    assert add(client, actor_id, "I like jazz")["memory_id"] != gone["memory_id"]


def test_delete_all_is_204_even_when_empty(client: TestClient) -> None:
    actor_id = actor()
    for i in range(3):
        add(client, actor_id, f"fact {i}")
    assert client.delete(base(actor_id)).status_code == 204
    assert search(client, actor_id) == []
    assert client.delete(base(actor_id)).status_code == 204


def test_routes_on_a_real_backend_process(backend_url: str) -> None:
    import httpx

    actor_id = actor()
    with httpx.Client(base_url=backend_url) as http:
        r = http.post(base(actor_id), json={"content": "I live in Lisbon"})
        assert r.status_code == 201
        hits = http.get(base(actor_id), params={"query": "where do I live? Lisbon", "match": "any"}).json()["items"]
        assert [h["memory_id"] for h in hits] == [r.json()["memory_id"]]
        assert http.delete(base(actor_id)).status_code == 204
