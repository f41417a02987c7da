"""`MODEL_PROVIDER=local`: a Strands `Model` over llama.cpp in process (the `xllamacpp` wheel), offline.

Strands' stock `LlamaCppModel` talks to a llama.cpp server over HTTP and sends list-of-parts message content, which
gives empty replies with this model; this provider calls llama.cpp's chat completion in process with plain-string
messages. `xllamacpp` ships prebuilt wheels, so installing the `local` extra compiles nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from pydantic import BaseModel
from strands.models.model import Model
from strands.types.content import Messages
from strands.types.exceptions import ContextWindowOverflowException
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolSpec

from ..exceptions import ModelBusyError
from ._streaming import stop_events, to_chat_messages

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)

_servers: dict[tuple[str, int], Any] = {}
_servers_lock = threading.Lock()


class LocalModelConfig(TypedDict, total=False):
    """Configuration of `LocalLlamaModel`.

    Attributes:
        model_path: GGUF file (default: the bundled Qwen2.5-Coder-0.5B-Instruct).
        n_ctx: context window in tokens.
        max_tokens: most tokens generated per reply.
        temperature: sampling temperature.
        seed: sampling seed, for repeatable replies.
    """

    model_path: str
    n_ctx: int
    max_tokens: int
    temperature: float
    seed: int


def get_server(model_path: str, n_ctx: int) -> Any:
    """Return the process's `xllamacpp.Server` for this file, loading the model on first use (a second or two).

    Raises:
        ImportError: the `local` extra (llama.cpp) is not installed.
        RuntimeError: llama.cpp could not load the file (not a GGUF, or truncated).
    """
    key = (model_path, n_ctx)
    with _servers_lock:
        if key not in _servers:
            try:
                import xllamacpp
            except ImportError as e:
                raise ImportError(
                    "MODEL_PROVIDER=local needs llama.cpp: install test-session-agent[local] (uv sync does)"
                ) from e

            threads = os.cpu_count() or 2
            params = xllamacpp.CommonParams()
            params.model.path = model_path
            params.n_ctx = n_ctx
            # One slot: requests queue inside llama.cpp (2 cores gain nothing from parallel decoding) and the slot
            # keeps the whole context window instead of a share of it.
            params.n_parallel = 1
            params.cpuparams.n_threads = threads
            params.cpuparams_batch.n_threads = threads
            # llama.cpp's server always opens a listener, which this process never uses: bind it to a unix socket in
            # a private directory that is deleted once bound (no TCP port, no path to connect to), and require a
            # random key on it all the same.
            socket_dir = tempfile.mkdtemp(prefix="llama-")
            params.hostnames = [str(Path(socket_dir) / "llama.sock")]
            params.api_keys = [secrets.token_urlsafe(32)]
            params.n_threads_http = 1
            params.ui = False
            params.verbosity = 1  # errors only: llama.cpp's per-request info lines would flood the service log
            logger.info("model_path=<%s>, n_ctx=<%d> | loading local model", model_path, n_ctx)
            started = time.perf_counter()
            try:
                _servers[key] = xllamacpp.Server(params)
            finally:
                shutil.rmtree(socket_dir, ignore_errors=True)
            logger.info("seconds=<%.1f> | local model loaded", time.perf_counter() - started)
        return _servers[key]


class LocalModelQueue:
    """The turns admitted to the local model: one generating in llama.cpp's single slot, at most `size` waiting.

    A turn beyond them is refused at once (`ModelBusyError`: 503 with `Retry-After`) rather than held for as long as
    every generation ahead of it takes, so one actor's long replies cannot make everyone else wait without bound.

    Args:
        size: turns that may wait behind the one generating; None: no bound.
    """

    def __init__(self, size: int | None) -> None:
        self.size = size
        self._admitted = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a place in the queue for the block (a whole turn: refused before anything of it is stored).

        Raises:
            ModelBusyError: the slot is taken and `size` turns already wait.
        """
        with self._lock:
            if self.size is not None and self._admitted > self.size:
                raise ModelBusyError(f"the local model is busy: {self._admitted} turns admitted, {self.size} may wait")
            self._admitted += 1
        try:
            yield
        finally:
            with self._lock:
                self._admitted -= 1


@lru_cache(maxsize=8)
def local_model_queue(size: int | None) -> LocalModelQueue:
    """The process's queue of the local model (every `LocalLlamaModel` built by the factory shares it)."""
    return LocalModelQueue(size)


def _raise_for_error(error: dict[str, Any]) -> None:
    if error.get("type") == "exceed_context_size_error":
        raise ContextWindowOverflowException(str(error.get("message")))
    raise RuntimeError(f"llama.cpp: {error.get('message') or error}")


class LocalLlamaModel(Model):
    """Strands model provider running a GGUF model in process with llama.cpp.

    Streams text deltas as they are generated and reports llama.cpp's token usage. Tools are not offered to the
    model. Generations run one at a time (llama.cpp queues the others).

    Args:
        queue: the turns admitted to the model (`LOCAL_MODEL_QUEUE_SIZE`); None: an unbounded one of its own.
        **model_config: see `LocalModelConfig`.
    """

    def __init__(self, queue: LocalModelQueue | None = None, **model_config: Any) -> None:
        self.queue = queue if queue is not None else LocalModelQueue(None)
        self.config: LocalModelConfig = {"n_ctx": 8192, "max_tokens": 512, "temperature": 0.2, "seed": 0}
        self.update_config(**model_config)
        if "model_path" not in self.config:
            from .bundled import bundled_model_path

            self.config["model_path"] = str(bundled_model_path())

    def update_config(self, **model_config: Any) -> None:
        """Merge `model_config` into the configuration."""
        self.config.update(model_config)  # type: ignore[typeddict-item]

    def get_config(self) -> LocalModelConfig:
        """Return the configuration."""
        return self.config

    def admit(self) -> contextlib.AbstractContextManager[None]:
        """A place in the model's queue for a turn (see `LocalModelQueue.admit`)."""
        return self.queue.admit()

    def load(self) -> None:
        """Load the model now rather than on the first request."""
        get_server(self.config["model_path"], self.config["n_ctx"])

    def _request(self, chat: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
        return {
            "messages": chat,
            "max_tokens": self.config["max_tokens"],
            "temperature": self.config["temperature"],
            "seed": self.config["seed"],
            **extra,
        }

    def _generate(
        self, chat: list[dict[str, str]], emit: Callable[[StreamEvent], None], cancelled: Callable[[], bool]
    ) -> None:
        server = get_server(self.config["model_path"], self.config["n_ctx"])
        started = time.perf_counter()
        stop_reason = "end_turn"
        usage: dict[str, Any] = {}
        error: dict[str, Any] | None = None
        failure: BaseException | None = None

        def on_chunk(chunk: dict[str, Any]) -> bool:
            """Handle one streamed chunk; True stops the generation."""
            nonlocal stop_reason, usage, error, failure
            try:
                if "error" in chunk:
                    error = chunk["error"]
                    return True
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        emit({"contentBlockDelta": {"delta": {"text": text}}})
                    if choice.get("finish_reason") == "length":
                        stop_reason = "max_tokens"
                usage = chunk.get("usage") or usage
                return cancelled()
            except BaseException as e:  # never let an exception cross into llama.cpp's callback
                failure = e
                return True

        request = self._request(chat, stream=True, stream_options={"include_usage": True})
        server.handle_chat_completions(request, on_chunk)
        if failure is not None:
            raise failure
        if error is not None:
            _raise_for_error(error)
        latency_ms = int((time.perf_counter() - started) * 1000)
        emit({"contentBlockStop": {}})
        input_tokens = int(usage.get("prompt_tokens", 0))
        output_tokens = int(usage.get("completion_tokens", 0))
        for event in stop_events(stop_reason, input_tokens, output_tokens, latency_ms):
            emit(event)

    async def stream(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None = None,
        system_prompt: str | None = None,
        *,
        cancel_signal: threading.Event | None = None,
        **kwargs: Any,
    ) -> AsyncIterable[StreamEvent]:
        """Generate the assistant's reply to `messages`, yielding Strands stream events as tokens arrive.

        Raises:
            ContextWindowOverflowException: the conversation does not fit the context window.
            RuntimeError: llama.cpp failed.
        """
        chat = to_chat_messages(messages, system_prompt)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[StreamEvent | BaseException | None] = asyncio.Queue()

        # Set when the consumer leaves early (the stream closed or cancelled, e.g. a speculative turn undone): the
        # generation stops at its next token instead of running on, holding the model, for nobody.
        abandoned = threading.Event()

        def emit(event: StreamEvent | BaseException | None) -> None:
            if abandoned.is_set():
                return  # nobody reads the queue any more, and its event loop may already be closed
            loop.call_soon_threadsafe(queue.put_nowait, event)

        def cancelled() -> bool:
            return abandoned.is_set() or (cancel_signal is not None and cancel_signal.is_set())

        def work() -> None:
            try:
                self._generate(chat, emit, cancelled)
            except BaseException as e:
                emit(e)
            finally:
                emit(None)

        yield {"messageStart": {"role": "assistant"}}
        yield {"contentBlockStart": {"start": {}}}
        worker = threading.Thread(target=work, name="llama-generate", daemon=True)
        worker.start()
        try:
            while (event := await queue.get()) is not None:
                if isinstance(event, BaseException):
                    raise event
                yield event
        finally:
            abandoned.set()

    async def structured_output(
        self, output_model: type[T], prompt: Messages, system_prompt: str | None = None, **kwargs: Any
    ) -> AsyncGenerator[dict[str, T | Any], None]:
        """Generate JSON constrained to `output_model`'s schema and yield `{"output": instance}` last.

        Raises:
            ContextWindowOverflowException: the prompt does not fit the context window.
            pydantic.ValidationError: the output does not match the schema.
        """
        chat = to_chat_messages(prompt, system_prompt)
        response_format = {"type": "json_schema", "json_schema": {"schema": output_model.model_json_schema()}}

        def work() -> str:
            server = get_server(self.config["model_path"], self.config["n_ctx"])
            result = server.handle_chat_completions(
                self._request(chat, response_format=response_format, temperature=0.0)
            )
            if "error" in result:
                _raise_for_error(result["error"])
            return str(result["choices"][0]["message"]["content"])

        text = await asyncio.to_thread(work)
        yield {"output": output_model.model_validate_json(text)}


def resolve_model_path(configured: str | None) -> Path | None:
    """`LOCAL_MODEL_PATH` when set (must exist), else None for the bundled model.

    Raises:
        FileNotFoundError: the configured file does not exist.
    """
    if not configured:
        return None
    path = Path(configured).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"LOCAL_MODEL_PATH {path} does not exist")
    return path
