"""Strands agents bound to backend sessions, run one turn at a time per session.

Agents are built on demand and cached (bounded LRU with idle expiry); turns run on worker threads so the server's
event loop never blocks, under the session's lease so processes never interleave.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import httpx
from cachetools import TTLCache
from strands import Agent
from strands.agent.conversation_manager import SlidingWindowConversationManager
from strands.models.model import Model
from strands.types.exceptions import SessionException
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential
from tenacity.wait import wait_base

from ._http import backend_client
from .agent_memory import ActorMemory
from .exceptions import (
    BackendUnavailableError,
    SessionBusyError,
    SessionNotFoundError,
    TurnNotStoredError,
    TurnOutcomeUnknownError,
)
from .handoff import HANDOFF_STATE_KEY
from .models.factory import ProfileModels
from .models.gated import LeaseGatedModel
from .observability import AgentMetrics
from .postgresql_session_repository import PostgreSQLSessionRepository
from .profiles import AgentProfile, AgentProfileClient
from .session_manager import PostgreSQLSessionManager
from .session_managers import ServiceSessionManager, build_session_manager
from .settings import AgentSettings
from .tools import resolve_tools

logger = logging.getLogger(__name__)

AGENT_ID = "default"

# Waits between attempts to take a busy session's lease: 5 ms, doubling, at most 250 ms.
LEASE_FIRST_WAIT = 0.005
LEASE_MAX_WAIT = 0.25

TextCallback = Callable[[str], None]
"""Called from a turn's worker thread with each text delta as the model writes it."""

ModelStartCallback = Callable[[], None]
"""Called from a turn's worker thread as each model call of the turn starts (a speculative one: its lease request
already sent). A streaming route sends its response headers then, while the model works, rather than before the
turn's work up to the model call, which they would compete with for the GIL."""


@dataclass
class CachedAgent:
    """A cached agent and its session manager (kept together: the service sets the manager's lease owner).

    `fingerprint` names what the agent was built from (profile and its version, actor): a turn asking for another
    one rebuilds the agent, so an updated profile, or a turn routed to another profile, runs with that profile.
    """

    agent: Agent
    manager: ServiceSessionManager
    fingerprint: tuple[str | None, ...] = ()
    memory: ActorMemory | None = None
    # The session's last turn was routed to its active agent: the next one's lease decides, so it is not speculated.
    routed: bool = False


@dataclass
class TurnResult:
    """Outcome of one agent turn.

    Attributes:
        session_id: the session the turn ran in.
        response: the assistant's reply text.
        conversation_length: messages in the agent's conversation after the turn.
        cached: True when the agent came from the cache, False when it was rebuilt from the backend.
        duration_ms: wall time of the turn (waiting for the session excluded), in milliseconds.
        usage: token counts reported by the model (`inputTokens`, `outputTokens`, `totalTokens`).
        replayed: True when the answer is the stored one of an earlier turn with the same Idempotency-Key.
        injected_memory: the actor's memories folded into the model's input this turn (None: none).
        agent_id: the agent profile that answered (the session's active agent), else `AGENT_ID`.
        session_managed: False when the backend was down and a fresh agent answered without history
            (`SESSION_FALLBACK=stateless`); nothing of such a turn is stored, now or later.
    """

    session_id: str
    response: str
    conversation_length: int
    cached: bool
    duration_ms: float
    usage: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False
    injected_memory: str | None = None
    agent_id: str = AGENT_ID
    session_managed: bool = True

    @classmethod
    def from_record(cls, session_id: str, record: dict[str, Any], started: float, *, replayed: bool) -> TurnResult:
        """The result of a turn as its batch recorded it (`{"response", "conversation_length", "usage"}`)."""
        return cls(
            session_id=session_id,
            response=str(record.get("response", "")),
            conversation_length=int(record.get("conversation_length", 0)),
            cached=False,
            duration_ms=(time.perf_counter() - started) * 1000,
            usage=dict(record.get("usage") or {}),
            replayed=replayed,
        )


class SessionAgents:
    """Runs agent turns on sessions stored in the session backend.

    Args:
        settings: service settings (backend URL and key, cache size and idle timeout, system prompt).
        model: the Strands model shared by every agent of the process.
        max_workers: threads available to run turns at once.
        metrics: where turns, cache lookups and backend errors are counted (default: a registry of its own).
    """

    def __init__(
        self, settings: AgentSettings, model: Model, max_workers: int = 32, metrics: AgentMetrics | None = None
    ) -> None:
        self.settings = settings
        self.model = model
        self.client = backend_client(
            settings.backend_url,
            settings.backend_api_key,
            httpx.Timeout(settings.backend_timeout_seconds, connect=2.0),
            max_connections=max_workers * 2,
        )
        self.repository = PostgreSQLSessionRepository(client=self.client)
        self.models = ProfileModels(settings, model)
        self.profiles = AgentProfileClient(client=self.client)
        self.metrics = metrics or AgentMetrics()
        self.metrics.cache_size.set_function(self.cached_count)
        # Until then (monotonic s), turns answer without a session and without trying the backend (fallback).
        self._backend_down_until = 0.0
        self._cache: TTLCache[str, CachedAgent] = TTLCache(
            maxsize=settings.agent_cache_size, ttl=settings.agent_idle_seconds
        )
        self._cache_lock = threading.Lock()
        # Live while a turn holds or waits for it; vanishes with the last user, so memory follows active sessions.
        self._session_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="agent-turn")
        # Lease requests of speculative turns, sent while the turn's own thread starts the agent.
        self._lease_executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="agent-lease")
        # The lease owner of every turn of this process: a lease is re-entrant for its owner, so a lease this process
        # could not release (the backend died mid-turn) never blocks its own next turn. Turns of one session within
        # the process are already serialized by the session's lock. The random part keeps a restarted process
        # (same host name and pid in a container) from inheriting the leases of its predecessor.
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Leases whose release failed: released as soon as the backend answers again, so other processes need not
        # wait out the TTL.
        self._unreleased: set[str] = set()
        self._unreleased_lock = threading.Lock()

    def close(self) -> None:
        """Stop the worker threads (after running turns finish) and close the HTTP client."""
        self._executor.shutdown(wait=True)
        self._lease_executor.shutdown(wait=True)
        self.client.close()

    # cache

    def cached_count(self) -> int:
        """Number of agents held in memory now."""
        with self._cache_lock:
            self._cache.expire()
            return len(self._cache)

    def expire_idle(self) -> None:
        """Drop agents idle for longer than the idle timeout."""
        with self._cache_lock:
            self._cache.expire()

    def drop(self, session_id: str) -> None:
        """Forget the cached agent of a session (it is rebuilt from the backend on next use)."""
        with self._cache_lock:
            self._cache.pop(session_id, None)

    def _take(self, session_id: str) -> CachedAgent | None:
        with self._cache_lock:
            return self._cache.pop(session_id, None)

    def _put(self, session_id: str, entry: CachedAgent) -> None:
        # Re-inserting restarts the idle clock and moves the session to the LRU's young end.
        with self._cache_lock:
            self._cache[session_id] = entry

    def build_agent(
        self, session_id: str, actor_id: str | None = None, profile: AgentProfile | None = None
    ) -> CachedAgent:
        """Build an agent whose conversation is restored from (or created in) the backend.

        Args:
            session_id: the agent's session (created with `SESSION_DEFAULT_TTL_SECONDS`, sliding, when new).
            actor_id: the actor of the turn: recorded on a new session, and whose long-term memory the agent has.
            profile: system prompt, model and tools of the agent; None: the service's defaults and no tools.

        Raises:
            SessionException: the backend is unreachable or refused.
        """
        manager = build_session_manager(self.settings, self.client, session_id, actor_id)
        memory = ActorMemory(actor_id, self.client) if actor_id else None
        system_prompt = profile.system_prompt if profile is not None else None
        tools: list[Any] | None = resolve_tools(profile.tools) if profile is not None else None
        agent = Agent(
            model=LeaseGatedModel(self.models.model_for(profile.model_config) if profile is not None else self.model),
            agent_id=AGENT_ID,
            system_prompt=system_prompt if system_prompt is not None else self.settings.system_prompt,
            tools=tools,
            session_manager=manager,
            memory_manager=memory.manager if memory is not None else None,
            conversation_manager=SlidingWindowConversationManager(window_size=40),
            callback_handler=None,
        )
        return CachedAgent(agent, manager, _fingerprint(profile, actor_id), memory)

    # turns

    async def run_turn(
        self,
        session_id: str,
        prompt: str,
        *,
        actor_id: str | None = None,
        on_text: TextCallback | None = None,
        idempotency_key: str | None = None,
        profile: AgentProfile | None = None,
        require_actor: bool = False,
        on_model_start: ModelStartCallback | None = None,
    ) -> TurnResult:
        """Run one turn: wait for the session's earlier turns, then invoke its agent on a worker thread.

        The turn is shielded from the caller's cancellation (a client that disconnects does not cut a turn in half).

        Args:
            session_id: the session of the turn (created in the backend when new).
            prompt: the user's message.
            actor_id: actor recorded on a new session.
            on_text: called from the worker thread with each text delta as the model produces it.
            idempotency_key: the client's Idempotency-Key: when a turn with this key is already committed in the
                session, its answer is returned and nothing runs or is stored.
            profile: the agent profile the turn runs with; None: the service's defaults.
            require_actor: the session must be `actor_id`'s (a device's own): another's reads as not found.
            on_model_start: called from the worker thread as each model call starts (`ModelStartCallback`).

        The turn goes to the session's active agent profile when one is set. With `SESSION_FALLBACK=stateless`, a
        backend that cannot be reached before the turn's commit is sent gets a stateless answer instead of an error.

        Raises:
            SessionNotFoundError: `require_actor` and the session belongs to another actor.
            TurnNotStoredError: the backend failed during the commit and nothing of the turn is stored.
            TurnOutcomeUnknownError: the commit was sent but whether it landed cannot be learned now.
            SessionException: the backend is unreachable or refused a write; the cached agent is dropped so the
                next turn starts from what the backend holds.
        """
        turn = functools.partial(
            self._turn_or_stateless,
            session_id,
            prompt,
            actor_id,
            on_text,
            idempotency_key,
            require_actor,
            profile,
            on_model_start,
        )
        return await asyncio.shield(self._run_turn(session_id, turn))

    def _lock_for(self, session_id: str) -> asyncio.Lock:
        lock = self._session_locks.get(session_id)
        if lock is None:
            lock = self._session_locks[session_id] = asyncio.Lock()
        return lock

    async def _run_turn(self, session_id: str, turn: Callable[[float], TurnResult]) -> TurnResult:
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
            loop = asyncio.get_running_loop()
            # The worker thread logs with the request's context (session, actor and device ids).
            return await loop.run_in_executor(self._executor, contextvars.copy_context().run, turn, deadline)
        finally:
            lock.release()

    def take_lease(
        self, session_id: str, deadline: float, idempotency_key: str | None, owner: str | None = None
    ) -> dict[str, Any]:
        """Take the session's lease, retrying while another writer holds it, until `deadline` (monotonic s).

        Args:
            session_id: the session.
            deadline: when to give up (monotonic seconds); one attempt is made even when it has passed.
            idempotency_key: the turn's Idempotency-Key (the lease then carries that key's stored answer).
            owner: the lease owner; default: this process's (`self.owner`).

        Raises:
            SessionBusyError: another writer still held it at the deadline.
        """
        retrying = Retrying(
            retry=retry_if_exception_type(SessionBusyError),
            wait=_until(deadline, wait_exponential(multiplier=LEASE_FIRST_WAIT, max=LEASE_MAX_WAIT)),
            stop=lambda _: time.monotonic() >= deadline,
            reraise=True,
        )
        return retrying(
            self.repository.acquire_lease,
            session_id,
            owner or self.owner,
            self.settings.lease_ttl_seconds,
            idempotency_key,
        )

    def _turn_or_stateless(
        self,
        session_id: str,
        prompt: str,
        actor_id: str | None,
        on_text: TextCallback | None,
        idempotency_key: str | None,
        require_actor: bool,
        profile: AgentProfile | None,
        on_model_start: ModelStartCallback | None,
        deadline: float,
    ) -> TurnResult:
        """`_turn`, counted; a stateless answer while the backend is down (before the commit) and fallback is on."""
        fallback = self.settings.session_fallback == "stateless"
        self.metrics.turns_in_progress.inc()
        try:
            if fallback and time.monotonic() < self._backend_down_until:
                result = self._stateless_turn(session_id, prompt, on_text, on_model_start)
            else:
                try:
                    result = self._turn(
                        session_id,
                        prompt,
                        actor_id,
                        on_text,
                        deadline,
                        idempotency_key,
                        profile,
                        require_actor,
                        on_model_start,
                    )
                except BackendUnavailableError as e:
                    # A commit sent and unanswered may have landed: only a turn that stored nothing is answered anew.
                    if not fallback or isinstance(e, TurnNotStoredError | TurnOutcomeUnknownError):
                        raise
                    self.metrics.backend_errors.labels(kind=type(e).__name__).inc()
                    self._backend_down_until = time.monotonic() + self.settings.session_fallback_retry_seconds
                    logger.warning(
                        "session_id=<%s> | session backend unavailable, answering without a session", session_id
                    )
                    result = self._stateless_turn(session_id, prompt, on_text, on_model_start)
        except SessionException as e:
            self.metrics.backend_errors.labels(kind=type(e).__name__).inc()
            self.metrics.turns.labels(outcome=type(e).__name__).inc()
            raise
        except Exception:
            self.metrics.turns.labels(outcome="error").inc()
            raise
        finally:
            self.metrics.turns_in_progress.dec()
        outcome = "stateless" if not result.session_managed else "replayed" if result.replayed else "ok"
        self.metrics.turns.labels(outcome=outcome).inc()
        if result.session_managed and not result.replayed:
            self.metrics.turn_seconds.observe(result.duration_ms / 1000)
        return result

    def _stateless_turn(
        self,
        session_id: str,
        prompt: str,
        on_text: TextCallback | None,
        on_model_start: ModelStartCallback | None,
    ) -> TurnResult:
        """Answer with a fresh agent without session manager: no history, nothing stored now or later."""
        started = time.perf_counter()
        agent = Agent(model=self.model, system_prompt=self.settings.system_prompt, callback_handler=None)
        if on_model_start is not None:
            on_model_start()  # about a millisecond early (no gated model here): this path is the degraded one
        result = asyncio.run(_invoke(agent, prompt, on_text))
        return TurnResult(
            session_id=session_id,
            response=str(result).strip() if result is not None else "",
            conversation_length=len(agent.messages),
            cached=False,
            duration_ms=(time.perf_counter() - started) * 1000,
            usage=dict(result.metrics.accumulated_usage) if result is not None else {},
            session_managed=False,
        )

    def _turn(
        self,
        session_id: str,
        prompt: str,
        actor_id: str | None,
        on_text: TextCallback | None,
        deadline: float,
        idempotency_key: str | None,
        profile: AgentProfile | None = None,
        require_actor: bool = False,
        on_model_start: ModelStartCallback | None = None,
    ) -> TurnResult:
        self.release_pending()
        entry = self._take(session_id)
        if entry is not None and self._may_speculate(entry, profile, actor_id):
            # The cached agent most likely is current: its model starts while the lease request is in flight.
            speculation = _Speculation(self, session_id, entry, actor_id, require_actor, idempotency_key)
            try:
                result = self._run_agent(
                    session_id,
                    prompt,
                    on_text,
                    idempotency_key,
                    entry,
                    cached=True,
                    profile=profile,
                    renewal=speculation.renewal,
                    speculation=speculation,
                    on_model_start=on_model_start,
                )
            except BaseException:
                if speculation.failure is not None:  # the lease request itself failed: as without speculation
                    raise speculation.failure from None
                if speculation.verdict in (None, "confirmed"):
                    raise
                # Nothing of it was streamed or stored; run the turn as without speculation, from the backend's state.
                self.metrics.speculative_turns.labels(outcome="mispredicted").inc()
                verdict = speculation.verdict
                logger.debug("session_id=<%s>, verdict=<%s> | speculative start undone", session_id, verdict)
                entry = None
            else:
                self.metrics.speculative_turns.labels(outcome="confirmed").inc()
                self.metrics.cache_lookups.labels(result="hit").inc()
                return result
        try:
            lease = self.take_lease(session_id, deadline, idempotency_key)
        except BaseException:
            if entry is not None:
                self._put(session_id, entry)  # still what it was: the next turn may use it
            raise
        started = time.perf_counter()
        verdict = _lease_verdict(lease, entry, session_id, actor_id, require_actor)
        if verdict == "not_found":
            # Checked before a replay: another device's Idempotency-Key must not return its answer either.
            self._release(session_id)
            raise SessionNotFoundError(f"session {session_id!r} not found")
        if verdict == "replay":
            # A retry of a turn already committed: its answer, and nothing stored again.
            self._release(session_id)
            logger.debug("session_id=<%s> | idempotent retry answered from the stored turn", session_id)
            return TurnResult.from_record(session_id, lease["turn"], started, replayed=True)
        renewal = LeaseRenewal(self.repository, session_id, self.owner, self.settings.lease_ttl_seconds)
        try:
            cached = entry is not None
            if verdict == "stale":
                # Another process wrote this session since this copy was cached, or the id was deleted and created
                # afresh: start from the backend's state.
                entry, cached = None, False
            # The session's active agent, when one is set, takes precedence over the session's own profile.
            profile = self._routed_profile(session_id, lease) or profile
            if entry is not None and entry.fingerprint != _fingerprint(profile, actor_id):
                entry, cached = None, False  # another profile (version) or actor: rebuilt around the same history
            if entry is None:
                entry = self.build_agent(session_id, actor_id, profile)
            entry.routed = lease.get("active_agent") is not None
        except BaseException:
            renewal.stop()
            self._release(session_id)
            raise
        return self._run_agent(
            session_id,
            prompt,
            on_text,
            idempotency_key,
            entry,
            cached=cached,
            profile=profile,
            renewal=renewal,
            started=started,
            on_model_start=on_model_start,
        )

    def _may_speculate(self, entry: CachedAgent, profile: AgentProfile | None, actor_id: str | None) -> bool:
        """Whether a turn may start `entry`'s model before its lease is confirmed (`SESSION_SPECULATIVE_TURNS`)."""
        return (
            self.settings.speculative_turns
            and isinstance(entry.agent.model, LeaseGatedModel)
            and isinstance(entry.manager, PostgreSQLSessionManager)
            and not entry.routed
            and entry.fingerprint == _fingerprint(profile, actor_id)
        )

    def _run_agent(
        self,
        session_id: str,
        prompt: str,
        on_text: TextCallback | None,
        idempotency_key: str | None,
        entry: CachedAgent,
        *,
        cached: bool,
        profile: AgentProfile | None,
        renewal: LeaseRenewal,
        speculation: _Speculation | None = None,
        started: float | None = None,
        on_model_start: ModelStartCallback | None = None,
    ) -> TurnResult:
        """Invoke `entry`'s agent under the session's lease (held, or, with `speculation`, in flight) and end it."""
        started = time.perf_counter() if started is None else started
        turn_id = uuid.uuid4().hex
        manager = entry.manager
        try:
            if speculation is None:  # a speculative turn counts its lookup once confirmed (else it runs again)
                self.metrics.cache_lookups.labels(result="hit" if cached else "miss").inc()
            if entry.memory is not None:
                entry.memory.begin_turn()
            manager.lease_owner = self.owner
            manager.turn = {"turn_id": turn_id, "idempotency_key": idempotency_key}
            # The lease ends with the turn's commit (one request fewer), its renewals stopped just before.
            manager.release_lease_on_commit = self.settings.release_lease_with_commit
            manager.before_commit = renewal.stop
            manager.lease_released = False
            if speculation is not None:
                cast(LeaseGatedModel, entry.agent.model).gate = speculation.gate
            if isinstance(entry.agent.model, LeaseGatedModel):
                entry.agent.model.on_start = on_model_start
            ttl = self.settings.active_agent_ttl_seconds or None
            handoff = {HANDOFF_STATE_KEY: lambda agent_id: self.repository.set_active_agent(session_id, agent_id, ttl)}
            prefetch = cached and self.settings.model_prefetch and entry.memory is None
            result = asyncio.run(_invoke(entry.agent, prompt, on_text, handoff, prefetch=prefetch))
        except BackendUnavailableError as e:
            if manager.unresolved_turn_id != turn_id:
                logger.warning("session_id=<%s> | turn failed, cached agent dropped", session_id, exc_info=True)
                raise
            # The commit was sent and its answer lost: find out what happened rather than guess.
            record = self._resolve(session_id, turn_id, e)
            return TurnResult.from_record(session_id, record, started, replayed=False)
        except BaseException:
            # What the agent holds in memory may now differ from what the backend stored: rebuild next time.
            if speculation is None or speculation.verdict in (None, "confirmed"):
                logger.warning("session_id=<%s> | turn failed, cached agent dropped", session_id, exc_info=True)
            raise
        finally:
            if isinstance(entry.agent.model, LeaseGatedModel):
                entry.agent.model.gate = entry.agent.model.on_start = None
                if entry.agent.model.prefetch_outcome is not None:
                    self.metrics.model_prefetches.labels(outcome=entry.agent.model.prefetch_outcome).inc()
                    entry.agent.model.prefetch_outcome = None
            renewal.stop()
            # A lease still in flight is waited for: it must not be taken after its release was sent.
            if (speculation is None or speculation.held()) and not manager.lease_released:
                self._release(session_id)
            manager.turn = None
            manager.release_lease_on_commit = False
            manager.before_commit = None
            manager.lease_released = False
        self._put(session_id, entry)
        usage = dict(result.metrics.accumulated_usage) if result is not None else {}
        return TurnResult(
            session_id=session_id,
            response=str(result).strip() if result is not None else "",
            conversation_length=len(entry.agent.messages),
            cached=cached,
            duration_ms=(time.perf_counter() - started) * 1000,
            usage=usage,
            injected_memory=entry.memory.injected if entry.memory is not None else None,
            agent_id=profile.agent_id if profile is not None else AGENT_ID,
        )

    def _routed_profile(self, session_id: str, lease: dict[str, Any]) -> AgentProfile | None:
        """The profile the session's active agent names (the lease carries it), or None: the session's own.

        Branch `profiles` passes the session's own profile to `run_turn`; the active agent takes precedence over it.
        """
        active = lease.get("active_agent")
        if active is None:
            return None
        profile = self.profiles.get(active["agent_id"])
        if profile is None:  # deleted since the lease was read: the session is back with its own
            logger.info("session_id=<%s>, agent_id=<%s> | active agent profile gone", session_id, active["agent_id"])
        return profile

    @staticmethod
    def _current(entry: CachedAgent, session_id: str, lease: dict[str, Any]) -> bool:
        """Whether a cached agent still is what the backend holds: same incarnation and agent version."""
        manager = entry.manager
        return manager.incarnation(session_id) == lease.get("incarnation") and manager.agent_version(
            session_id, AGENT_ID
        ) == lease["agent_versions"].get(AGENT_ID)

    def _resolve(self, session_id: str, turn_id: str, cause: BackendUnavailableError) -> dict[str, Any]:
        """Learn the outcome of a turn whose commit was sent but unanswered (the cached agent is not kept).

        Returns:
            The turn's recorded answer, when it was committed after all.

        Raises:
            TurnNotStoredError: nothing of the turn is stored (now certain: a late batch is refused).
            TurnOutcomeUnknownError: the backend could not tell within the session wait.
        """
        try:
            record = self.repository.resolve_turn(session_id, turn_id)
        except BackendUnavailableError as e:
            logger.warning("session_id=<%s>, turn_id=<%s> | turn outcome unknown", session_id, turn_id)
            raise TurnOutcomeUnknownError(
                f"session {session_id!r}: the outcome of turn {turn_id} is unknown: {cause}"
            ) from e
        if record is not None and record["status"] == "committed":
            logger.info("session_id=<%s>, turn_id=<%s> | commit answer lost, turn found committed", session_id, turn_id)
            return dict(record["result"] or {})
        raise TurnNotStoredError(f"session {session_id!r}: turn {turn_id} was not stored: {cause}") from cause

    def _try_lease(self, session_id: str, idempotency_key: str | None) -> dict[str, Any] | None:
        """One attempt at the session's lease (blocking): the lease, or None when another writer holds it."""
        try:
            return self.repository.acquire_lease(
                session_id, self.owner, self.settings.lease_ttl_seconds, idempotency_key
            )
        except SessionBusyError:
            return None

    def _release(self, session_id: str) -> None:
        """Release this process's lease on the session; remember it for `release_pending` when that fails."""
        try:
            self.repository.release_lease(session_id, self.owner)
        except SessionException:
            logger.warning("session_id=<%s> | lease release failed; released when the backend answers", session_id)
            with self._unreleased_lock:
                self._unreleased.add(session_id)

    def release_pending(self) -> int:
        """Release the leases whose release failed earlier (blocking; call when the backend may be back).

        Returns:
            How many are still pending (the backend still does not answer).
        """
        with self._unreleased_lock:
            pending, self._unreleased = self._unreleased, set()
        for session_id in pending:
            try:
                self.repository.release_lease(session_id, self.owner)
            except SessionException:
                with self._unreleased_lock:
                    self._unreleased.add(session_id)
        with self._unreleased_lock:
            return len(self._unreleased)

    def has_unreleased(self) -> bool:
        """Whether some lease of this process could not be released yet."""
        with self._unreleased_lock:
            return bool(self._unreleased)

    # backend passthroughs

    def degraded(self) -> bool:
        """Whether turns are answered without a session now (fallback on, and the backend was just found down)."""
        return self.settings.session_fallback == "stateless" and time.monotonic() < self._backend_down_until

    def device_session(self, device_id: str) -> str:
        """The device's current live session (its newest), else a new session id (blocking).

        With `SESSION_FALLBACK=stateless` a backend that cannot be reached gives a new id too: the turn is answered
        statelessly anyway.
        """
        try:
            return self.repository.latest_session_id(device_id) or uuid.uuid4().hex
        except BackendUnavailableError:
            if self.settings.session_fallback != "stateless":
                raise
            return uuid.uuid4().hex

    def history(self, session_id: str) -> list[dict[str, Any]] | None:
        """Messages of the session's agent in order, as `{message_id, role, content, created_at}` (blocking).

        Returns:
            The messages, or None when the session does not exist.
        """
        if self.repository.read_session(session_id) is None:
            return None
        messages = self.repository.list_messages(session_id, AGENT_ID)
        out = []
        for m in messages:
            shown = m.to_dict()
            message = shown["redact_message"] or shown["message"]
            out.append(
                {
                    "message_id": m.message_id,
                    "role": message["role"],
                    "content": message["content"],
                    "created_at": m.created_at,
                }
            )
        return out

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


Verdict = Literal["confirmed", "busy", "not_found", "replay", "routed", "stale"]


def _lease_verdict(
    lease: dict[str, Any] | None,
    entry: CachedAgent | None,
    session_id: str,
    actor_id: str | None,
    require_actor: bool,
) -> Verdict:
    """What a lease says of a turn about to run on `entry` (None: no cached agent), first reason first.

    `busy` (no lease), `not_found` (`require_actor` and the session is another actor's), `replay` (a committed turn
    of the same Idempotency-Key), `stale` (no cached agent, or another process wrote the session or it was re-created
    since it was cached), `routed` (the session has an active agent), else `confirmed`.
    """
    if lease is None:
        return "busy"
    if require_actor and lease.get("incarnation") is not None and lease.get("actor_id") != actor_id:
        return "not_found"
    if lease.get("turn") is not None:
        return "replay"
    if entry is None or not SessionAgents._current(entry, session_id, lease):
        return "stale"
    if lease.get("active_agent") is not None:
        return "routed"
    return "confirmed"


class _Mispredicted(Exception):
    """A speculative turn's lease showed it must not go on with its cached agent (raised into the invocation)."""


class _Speculation:
    """A turn started on a cached agent while its lease request is in flight (`SESSION_SPECULATIVE_TURNS`).

    The lease is requested once, from another thread, as the model starts; the agent's `LeaseGatedModel` holds the
    model's output until `gate` has judged the lease. Only `confirmed` lets the turn go on (and starts the lease's
    renewals); any other verdict stops the invocation before anything is streamed or stored, and the turn runs again
    the usual way: `busy` (another writer holds it), `not_found` (another actor's session), `replay` (a committed turn
    of the same Idempotency-Key), `routed` (the session has an active agent), `stale` (another process wrote the
    session, or it was re-created, since the agent was cached).

    Attributes:
        verdict: None until the gate judged the lease.
        failure: the lease request's own exception (e.g. the backend is unreachable), when it failed.
        renewal: the lease's renewals, started on `confirmed`.
    """

    def __init__(
        self,
        agents: SessionAgents,
        session_id: str,
        entry: CachedAgent,
        actor_id: str | None,
        require_actor: bool,
        idempotency_key: str | None,
    ) -> None:
        self.verdict: Verdict | None = None
        self.failure: BaseException | None = None
        self.renewal = LeaseRenewal(
            agents.repository, session_id, agents.owner, agents.settings.lease_ttl_seconds, start=False
        )
        self._judge = functools.partial(
            _lease_verdict, entry=entry, session_id=session_id, actor_id=actor_id, require_actor=require_actor
        )
        # The request is sent when the model starts, not before: its Python work would compete for the GIL with the
        # agent's own work before the model call, which is on the turn's critical path (the model's time is not).
        self._executor = agents._lease_executor
        self._try_lease = functools.partial(agents._try_lease, session_id, idempotency_key)
        self._lease: Future[dict[str, Any] | None] | None = None

    def gate(self) -> Awaitable[None]:
        """Send the lease request (from another thread); the awaitable returned waits for it and judges it.

        It returns when the turn may go on with the cached agent, else raises:
            _Mispredicted: any verdict but `confirmed`.
            Exception: the lease request's own failure (also kept in `failure`).
        """
        self._lease = self._executor.submit(contextvars.copy_context().run, self._try_lease)
        return self._judged(self._lease)

    async def _judged(self, request: Future[dict[str, Any] | None]) -> None:
        try:
            lease = await asyncio.wrap_future(request)
        except BaseException as e:
            self.failure = e
            raise
        self.verdict = self._judge(lease)
        if self.verdict != "confirmed":
            raise _Mispredicted(self.verdict)
        self.renewal.start()

    def held(self) -> bool:
        """Wait for the lease request to end, if it was sent; whether it took the lease."""
        if self._lease is None:
            return False
        try:
            return self._lease.result() is not None
        except BaseException:
            return False


class LeaseRenewal:
    """Renews a lease every third of its TTL on a timer thread until stopped (a turn may outlast one TTL)."""

    def __init__(
        self, repository: PostgreSQLSessionRepository, session_id: str, owner: str, ttl: float, start: bool = True
    ) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(repository, session_id, owner, ttl), name="lease-renewal", daemon=True
        )
        if start:
            self.start()

    def start(self) -> None:
        """Start renewing (once the lease is held), unless already stopped."""
        if not self._stop.is_set():
            self._thread.start()

    def _run(self, repository: PostgreSQLSessionRepository, session_id: str, owner: str, ttl: float) -> None:
        while not self._stop.wait(ttl / 3):
            try:
                repository.acquire_lease(session_id, owner, ttl)
            except SessionException:
                # Lost or unreachable: the turn's fenced write will be refused, so nothing is half-written.
                logger.warning("session_id=<%s> | lease renewal failed", session_id)

    def stop(self) -> None:
        """Stop renewing; waits for a renewal in flight, so none lands after the lease is released."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()


def _fingerprint(profile: AgentProfile | None, actor_id: str | None) -> tuple[str | None, ...]:
    """What a cached agent must have been built from to serve a turn of `profile` by `actor_id`."""
    if profile is None:
        return (None, None, actor_id)
    return (profile.agent_id, profile.updated_at, actor_id)


def _until(deadline: float, wait: wait_base) -> Callable[[RetryCallState], float]:
    """`wait`, cut so the next attempt happens no later than `deadline` (monotonic seconds)."""
    return lambda state: max(0.0, min(wait(state), deadline - time.monotonic()))


async def _invoke(
    agent: Agent,
    prompt: str,
    on_text: TextCallback | None,
    invocation_state: dict[str, Any] | None = None,
    *,
    prefetch: bool = False,
) -> Any:
    """Run one invocation of `agent` on `prompt`, passing each text delta to `on_text`; returns Strands' result.

    With `prefetch`, the agent's `LeaseGatedModel` first starts the model on the call Strands is predicted to make,
    and the model's first step runs before Strands' work up to its call (see `LeaseGatedModel.prefetch`).
    """
    model = agent.model if prefetch and isinstance(agent.model, LeaseGatedModel) else None
    if model is not None and model.prefetch(agent.messages, prompt):
        await asyncio.sleep(0)  # the prefetched model's first step (e.g. a request sent, a timer started) runs now
    result = None
    try:
        async for event in agent.stream_async(prompt, invocation_state=invocation_state):
            if on_text is not None and "data" in event and isinstance(event["data"], str):
                on_text(event["data"])
            if "result" in event:
                result = event["result"]
        if agent.memory_manager is not None:
            # Extraction runs as tasks of this turn's event loop, which ends with the turn: let them finish first.
            await agent.memory_manager.flush()
    finally:
        if model is not None:
            await model.discard_prefetch()
    return result
