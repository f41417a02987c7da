"""`SESSION_FALLBACK=stateless`: while the backend is down, turns are answered by a fresh agent without history."""

from __future__ import annotations

import time

from strands import Agent
from strands.models.model import Model

from ..settings import AgentSettings
from .request import TurnRequest, TurnResult
from .workers import invoke, run_on_thread_loop


class StatelessFallback:
    """Answers turns without a session while the backend is down (when `SESSION_FALLBACK=stateless`).

    Args:
        settings: `session_fallback`, `session_fallback_retry_seconds` and the system prompt.
        model: the service's default model.
    """

    def __init__(self, settings: AgentSettings, model: Model) -> None:
        self.enabled = settings.session_fallback == "stateless"
        self._retry_seconds = settings.session_fallback_retry_seconds
        self._system_prompt = settings.system_prompt
        self._model = model
        # Until then (monotonic s), turns answer without a session and without trying the backend.
        self._down_until = 0.0

    def active(self) -> bool:
        """Whether turns are answered without a session now (on, and the backend was just found down)."""
        return self.enabled and time.monotonic() < self._down_until

    def backend_down(self) -> None:
        """The backend was just found down: turns answer statelessly for `SESSION_FALLBACK_RETRY_SECONDS`."""
        self._down_until = time.monotonic() + self._retry_seconds

    def answer(self, request: TurnRequest) -> TurnResult:
        """Answer with a fresh agent without session manager: no history, nothing stored now or later (blocking)."""
        started = time.perf_counter()
        agent = Agent(model=self._model, system_prompt=self._system_prompt, callback_handler=None)
        if request.on_model_start is not None:
            request.on_model_start()  # about a millisecond early (no gated model here): this path is the degraded one
        result = run_on_thread_loop(invoke(agent, request.prompt, request.on_text))
        return TurnResult(
            session_id=request.session_id,
            response=str(result).strip() if result is not None else "",
            conversation_length=len(agent.messages),
            cached=False,
            duration_ms=(time.perf_counter() - started) * 1000,
            usage=dict(result.metrics.accumulated_usage) if result is not None else {},
            session_managed=False,
            stop_reason=result.stop_reason if result is not None else None,
        )
