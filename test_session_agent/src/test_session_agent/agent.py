"""`SessionAgents`: the agent service's facade over its turns (`turns/`), and the session's other operations.

A turn waits for the session's earlier turns in this process (a per-session lock), then runs on a worker thread
(`TurnWorkers`, one event loop per thread) through `TurnRunner.run` (`turns/run.py`), which holds the session's lease
across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from strands.models.model import Model

from ._http import backend_client
from .exceptions import BackendUnavailableError, SessionBusyError
from .memory_text import FirstPersonExtractor
from .observability import AgentMetrics
from .postgresql_session_repository import PostgreSQLSessionRepository
from .profiles import AgentProfileClient
from .service.admission import Admission, Ticket
from .service.memory_extraction import TurnExtraction
from .settings import AgentSettings
from .turns.backend import ServiceBackend
from .turns.cache import AgentBuilder, AgentCache, CachedAgent
from .turns.fallback import StatelessFallback
from .turns.lease import Leases
from .turns.request import AGENT_ID, ModelStartCallback, TextCallback, TurnRequest, TurnResult
from .turns.run import TurnRunner
from .turns.workers import TurnWorkers

__all__ = [
    "AGENT_ID",
    "CachedAgent",
    "ModelStartCallback",
    "SessionAgents",
    "TextCallback",
    "TurnRequest",
    "TurnResult",
]

logger = logging.getLogger(__name__)


class SessionAgents:
    """Runs agent turns on sessions stored in the session backend.

    Args:
        settings: service settings (backend URL and key, cache size and idle timeout, system prompt).
        model: the Strands model shared by every agent of the process.
        max_workers: threads available to run turns at once; None: `AGENT_TURN_WORKERS`.
        metrics: where turns, cache lookups and backend errors are counted (default: a registry of its own).

    Attributes:
        client: the keep-alive HTTP client to the backend (shared by everything below).
        repository: the backend's Strands contract (sessions, messages).
        backend: the backend's service-only endpoints (leases, active agent, fork, session pages).
        leases: this process's session leases (its owner, renewals, pending releases).
        cache: the agents held in memory.
    """

    def __init__(
        self,
        settings: AgentSettings,
        model: Model,
        max_workers: int | None = None,
        metrics: AgentMetrics | None = None,
    ) -> None:
        max_workers = max_workers or settings.turn_workers
        self.settings = settings
        self.model = model
        self.client = backend_client(
            settings.backend_url,
            settings.backend_api_key,
            httpx.Timeout(settings.backend_timeout_seconds, connect=2.0),
            max_connections=max_workers * 2,
        )
        self.repository = PostgreSQLSessionRepository(client=self.client)
        self.backend = ServiceBackend(self.client)
        self.profiles = AgentProfileClient(client=self.client)
        self.metrics = metrics or AgentMetrics()
        self.leases = Leases(self.backend, settings.lease_ttl_seconds)
        self.cache = AgentCache(settings.agent_cache_size, settings.agent_idle_seconds)
        self.metrics.cache_size.set_function(self.cached_count)
        self.fallback = StatelessFallback(settings, model)
        # A speculative turn's lease request is sent from here while the turn's own thread runs the model.
        self._lease_executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="agent-lease")
        self.runner = TurnRunner(
            settings,
            self.cache,
            AgentBuilder(settings, self.client, model, self.metrics),
            self.leases,
            self.backend,
            self.repository,
            self.profiles,
            self.fallback,
            self.metrics,
            self._lease_executor,
            TurnExtraction(
                self.backend,
                self.repository,
                FirstPersonExtractor(max_facts=settings.memory_max_extracted_per_turn),
                self.metrics,
            ),
        )
        self._workers = TurnWorkers(max_workers)
        # The local model admits turns through its own bounded queue (`models/local.py`); other models admit all.
        self._model_admission: Any = getattr(model, "admit", None)
        self.admission = Admission(*settings.admission_bounds(), metrics=self.metrics)
        # Live while a turn holds or waits for it; vanishes with the last user, so memory follows active sessions.
        self._session_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @property
    def owner(self) -> str:
        """The lease owner of this process's turns."""
        return self.leases.owner

    def close(self) -> None:
        """Stop the worker threads (after running turns finish), the lease renewals, and close the HTTP client."""
        self._workers.close()
        self._lease_executor.shutdown(wait=True)
        self.leases.close()
        self.client.close()

    def cached_count(self) -> int:
        """Number of agents held in memory now."""
        return len(self.cache)

    def expire_idle(self) -> None:
        """Drop agents idle for longer than the idle timeout."""
        self.cache.expire()

    def drop(self, session_id: str) -> None:
        """Forget the cached agent of a session (it is rebuilt from the backend on next use)."""
        self.cache.drop(session_id)

    def run_turn(self, request: TurnRequest, ticket: Ticket | None = None) -> Coroutine[Any, Any, TurnResult]:
        """Start one turn: admitted at once or refused (`Admission`), then run when its place and session are free.

        The turn waits for a running place, then for the session's earlier turns, and runs on a worker thread
        (`TurnRunner.run`). Every turn route comes through here: the refusal is raised before anything starts, so a
        streaming route answers it as a plain 503/429 rather than an event of a begun stream. The turn is shielded
        from the caller's cancellation (a client that disconnects does not cut a turn in half).

        Args:
            request: the turn.
            ticket: its admission, taken with `admission.admitted` before the route's own work; None: admitted
                here.

        Returns:
            The turn, to await at once (its place is taken already: a turn never awaited would keep it).

        Raises:
            TurnRefusedError: at once, without work: 503 the process is full, 429 the turn's actor floods.
            SessionBusyError: (awaited) earlier turns of the session, or another writer's lease, outlasted
                `SESSION_WAIT_SECONDS`.
            ModelBusyError: the local model's queue is full (`LOCAL_MODEL_QUEUE_SIZE`); nothing ran.
            SessionNotFoundError, TurnNotStoredError, TurnOutcomeUnknownError, SessionException: (awaited) see
                `TurnRunner.run`; the cached agent is dropped so the next turn starts from what the backend holds.
        """
        if ticket is None:
            ticket = self.admission.admit(request.actor_id)
        ticket.claimed = True
        return self._shielded_turn(request, ticket)

    async def _shielded_turn(self, request: TurnRequest, ticket: Ticket) -> TurnResult:
        return await asyncio.shield(self._admitted_turn(request, ticket))

    async def _admitted_turn(self, request: TurnRequest, ticket: Ticket) -> TurnResult:
        try:
            await self.admission.wait(ticket)
            return await self._run_turn(request)
        finally:
            self.admission.release(ticket)

    def _lock_for(self, session_id: str) -> asyncio.Lock:
        lock = self._session_locks.get(session_id)
        if lock is None:
            lock = self._session_locks[session_id] = asyncio.Lock()
        return lock

    async def _run_turn(self, request: TurnRequest) -> TurnResult:
        session_id = request.session_id
        deadline = time.monotonic() + self.settings.session_wait_seconds
        lock = self._lock_for(session_id)
        try:
            # Turns on one session queue here, in this process; the lease orders them across processes. A free lock
            # is taken at once (`wait_for` would cost a task and a loop iteration on the way to the model).
            if lock.locked():
                await asyncio.wait_for(lock.acquire(), timeout=max(0.0, deadline - time.monotonic()))
            else:
                await lock.acquire()
        except TimeoutError as e:
            raise SessionBusyError(f"session {session_id!r} is busy: earlier turns are still running") from e
        try:
            # The model's queue is entered after the session's own (same-session turns wait there, not here) and
            # before any work: a refused turn (`ModelBusyError`) has stored nothing, not even a new session.
            with self._model_admission() if self._model_admission is not None else contextlib.nullcontext():
                return await self._workers.run(lambda: self.runner.run(request, deadline))
        finally:
            lock.release()

    def release_pending(self) -> int:
        """Release the leases whose release failed earlier (blocking); how many are still pending."""
        return self.leases.release_pending()

    def has_unreleased(self) -> bool:
        """Whether some lease of this process could not be released yet."""
        return self.leases.has_unreleased()

    def degraded(self) -> bool:
        """Whether turns are answered without a session now (fallback on, and the backend was just found down)."""
        return self.fallback.active()

    def device_session(self, device_id: str) -> str:
        """The device's current live session (its newest), else a new session id (blocking).

        With `SESSION_FALLBACK=stateless` a backend that cannot be reached gives a new id too: the turn is answered
        statelessly anyway.
        """
        try:
            return self.backend.latest_session_id(device_id) or uuid.uuid4().hex
        except BackendUnavailableError:
            if not self.fallback.enabled:
                raise
            return uuid.uuid4().hex

    async def delete(self, session_id: str) -> None:
        """Delete the session in the backend and drop its cached agent, after the session's running turn.

        Raises:
            SessionNotFoundError: no such session.
        """
        async with self._lock_for(session_id):
            try:
                await asyncio.to_thread(self.repository.delete_session, session_id)
            finally:
                self.drop(session_id)
