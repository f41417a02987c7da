"""`MODEL_PROVIDER=local`: a Strands `Model` over `llama_cpp.Llama`, in process, offline.

Strands' stock `LlamaCppModel` talks to `llama_cpp.server`, which rejects list-of-parts message content and so
returns empty replies; this provider calls the library directly with plain-string chat messages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterable
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from pydantic import BaseModel
from strands.models.model import Model
from strands.types.content import Messages
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolSpec

from ._streaming import stop_events, to_chat_messages

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)

_llamas: dict[tuple[str, int], Any] = {}
_llamas_lock = threading.Lock()
# One generation at a time per process: llama.cpp contexts are not re-entrant and 2 cores gain nothing from more.
_generate_lock = threading.Lock()


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


def get_llama(model_path: str, n_ctx: int) -> Any:
    """Return the process's `llama_cpp.Llama` for this file, loading it on first use (a few seconds)."""
    key = (model_path, n_ctx)
    with _llamas_lock:
        if key not in _llamas:
            from llama_cpp import Llama

            logger.info("model_path=<%s>, n_ctx=<%d> | loading local model", model_path, n_ctx)
            _llamas[key] = Llama(
                model_path=model_path, n_ctx=n_ctx, n_threads=os.cpu_count() or 2, verbose=False, seed=0
            )
        return _llamas[key]


class LocalLlamaModel(Model):
    """Strands model provider running a GGUF model in process with llama-cpp-python.

    Streams text deltas as they are generated and reports token usage (prompt tokens from llama.cpp's context,
    completion tokens counted per streamed piece). Tools are not offered to the model.

    Args:
        **model_config: see `LocalModelConfig`.
    """

    def __init__(self, **model_config: Any) -> None:
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

    def load(self) -> None:
        """Load the model now rather than on the first request."""
        get_llama(self.config["model_path"], self.config["n_ctx"])

    def _generate(self, chat: list[dict[str, str]], emit: Any, cancel: threading.Event | None, **params: Any) -> None:
        llama = get_llama(self.config["model_path"], self.config["n_ctx"])
        with _generate_lock:
            started = time.perf_counter()
            output_tokens = 0
            stop_reason = "end_turn"
            chunks = llama.create_chat_completion(
                messages=chat,
                stream=True,
                max_tokens=self.config["max_tokens"],
                temperature=self.config["temperature"],
                seed=self.config["seed"],
                **params,
            )
            for chunk in chunks:
                if cancel is not None and cancel.is_set():
                    stop_reason = "cancelled"
                    break
                choice = chunk["choices"][0]
                text = choice.get("delta", {}).get("content")
                if text:
                    output_tokens += 1
                    emit({"contentBlockDelta": {"delta": {"text": text}}})
                if choice.get("finish_reason") == "length":
                    stop_reason = "max_tokens"
            input_tokens = max(0, int(llama.n_tokens) - output_tokens)
            latency_ms = int((time.perf_counter() - started) * 1000)
        emit({"contentBlockStop": {}})
        for event in stop_events(
            "end_turn" if stop_reason == "cancelled" else stop_reason, input_tokens, output_tokens, latency_ms
        ):
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
            ValueError: the prompt does not fit the context window (from llama.cpp).
        """
        chat = to_chat_messages(messages, system_prompt)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[StreamEvent | BaseException | None] = asyncio.Queue()

        def emit(event: StreamEvent | BaseException | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        def work() -> None:
            try:
                self._generate(chat, emit, cancel_signal)
            except BaseException as e:
                emit(e)
            finally:
                emit(None)

        yield {"messageStart": {"role": "assistant"}}
        yield {"contentBlockStart": {"start": {}}}
        worker = threading.Thread(target=work, name="llama-generate", daemon=True)
        worker.start()
        while (event := await queue.get()) is not None:
            if isinstance(event, BaseException):
                raise event
            yield event

    async def structured_output(
        self, output_model: type[T], prompt: Messages, system_prompt: str | None = None, **kwargs: Any
    ) -> AsyncGenerator[dict[str, T | Any], None]:
        """Generate JSON constrained to `output_model`'s schema and yield `{"output": instance}` last.

        Raises:
            pydantic.ValidationError: the output does not match the schema.
        """
        chat = to_chat_messages(prompt, system_prompt)
        schema = output_model.model_json_schema()

        def work() -> str:
            llama = get_llama(self.config["model_path"], self.config["n_ctx"])
            with _generate_lock:
                result = llama.create_chat_completion(
                    messages=chat,
                    response_format={"type": "json_object", "schema": schema},
                    max_tokens=self.config["max_tokens"],
                    temperature=0.0,
                )
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
