"""The OpenAI-compatible embedder against `httpx.MockTransport`: request shape, batching, order, errors."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest

from session_backend.embedder import BATCH_SIZE, DIMENSIONS, EmbedderError, OpenAIEmbedder, vector_literal


def _endpoint(seen: list[dict[str, object]], width: int = DIMENSIONS) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/embeddings"
        assert request.headers["authorization"] == "Bearer k"
        body = json.loads(request.content)
        seen.append(body)
        # answered out of order, unnormalised: the embedder sorts by index and normalises
        data = [{"index": i, "embedding": [float(i + 1)] * width} for i in range(len(body["input"]))][::-1]
        return httpx.Response(200, json={"data": data})

    return httpx.MockTransport(handle)


def test_batches_are_sent_and_answers_ordered_and_normalised() -> None:
    seen: list[dict[str, object]] = []
    embedder = OpenAIEmbedder("http://e.test/v1/", "m", "k", transport=_endpoint(seen))
    texts = [f"t{i}" for i in range(BATCH_SIZE + 3)]
    out = asyncio.run(embedder.embed(texts, query=False))
    assert out.shape == (len(texts), DIMENSIONS) and out.dtype == np.float32
    assert [len(b["input"]) for b in seen] == [BATCH_SIZE, 3]  # type: ignore[arg-type]
    assert seen[0]["model"] == "m" and seen[0]["dimensions"] == DIMENSIONS
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0)
    asyncio.run(embedder.aclose())


def test_a_wrong_width_or_a_failing_endpoint_is_an_embedder_error() -> None:
    embedder = OpenAIEmbedder("http://e.test/v1", "m", "k", transport=_endpoint([], width=DIMENSIONS + 1))
    with pytest.raises(EmbedderError, match="expected"):
        asyncio.run(embedder.embed(["a"], query=True))
    down = OpenAIEmbedder("http://e.test/v1", "m", "k", transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    with pytest.raises(EmbedderError):
        asyncio.run(down.embed(["a"], query=True))


def test_vector_literal_is_pgvector_text() -> None:
    assert vector_literal(np.array([0.5, -1.0], dtype=np.float32)) == "[0.5,-1.0]"
