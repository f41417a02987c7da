"""One turn, top to bottom (on a worker thread): cached agent or lease first, the invocation, the commit.

`TurnRunner.run` is the whole of it: a stateless answer while the backend is down (`fallback.py`); else a cached
agent's speculative start (`speculation.py`), or the lease taken (`lease.py`) and judged (`lease_verdict`), the
agent built when the cache has none current (`cache.py`); then the invocation under a `TurnContext` that fences
the turn's commit by the lease and ends the lease inside it.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import Executor
from typing import Any

from strands.types.exceptions import SessionException

from ..exceptions import BackendUnavailableError, SessionNotFoundError, TurnNotStoredError, TurnOutcomeUnknownError
from ..models.gated import MODEL_START_KEY, ModelStart
from ..observability import AgentMetrics
from ..postgresql_session_repository import PostgreSQLSessionRepository
from ..profiles import AgentProfile, AgentProfileClient
from ..service.handoff import HANDOFF_STATE_KEY
from ..service.memory_extraction import TurnExtraction, TurnMessages
from ..session_manager import PostgreSQLSessionManager, TurnContext
from ..settings import AgentSettings
from .backend import ServiceBackend
from .cache import AgentBuilder, AgentCache, CachedAgent, fingerprint
from .fallback import StatelessFallback
from .lease import Leases
from .request import AGENT_ID, TurnRequest, TurnResult
from .speculation import Speculation, lease_verdict, may_speculate
from .workers import invoke, run_on_thread_loop

logger = logging.getLogger(__name__)


class TurnRunner:
    """Runs turns (blocking; one at a time per session: the caller holds the session's lock).

    Args:
        settings: service settings.
        cache: the agent cache.
        builder: builds an agent when the cache has none current.
        leases: this process's leases.
        backend: the backend's service-only endpoints (active agent).
        repository: the backend's Strands contract (a lost commit is resolved through it).
        profiles: agent profiles (a session's active agent names one).
        fallback: the stateless answer while the backend is down.
        metrics: where turns, cache lookups and backend errors are counted.
        lease_executor: where a speculative turn's lease request is sent from.
        extraction: extracts a committed turn's facts into its actor's memories, once (its progress in the turn's
            record: a turn left pending by a crash is finished by the next holder of the session's lease).
    """

    def __init__(
        self,
        settings: AgentSettings,
        cache: AgentCache,
        builder: AgentBuilder,
        leases: Leases,
        backend: ServiceBackend,
        repository: PostgreSQLSessionRepository,
        profiles: AgentProfileClient,
        fallback: StatelessFallback,
        metrics: AgentMetrics,
        lease_executor: Executor,
        extraction: TurnExtraction,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.builder = builder
        self.leases = leases
        self.backend = backend
        self.repository = repository
        self.profiles = profiles
        self.fallback = fallback
        self.metrics = metrics
        self._lease_executor = lease_executor
        self.extraction = extraction

    def run(self, request: TurnRequest, deadline: float) -> TurnResult:
        """Run the turn, counted; a stateless answer while the backend is down (before the commit) and fallback is on.

        Args:
            request: the turn.
            deadline: when waiting for the session's lease gives up (monotonic seconds).

        Raises:
            SessionNotFoundError: `require_actor` and the session belongs to another actor.
            SessionBusyError: another writer held the session's lease until `deadline`.
            TurnNotStoredError: the backend failed during the commit and nothing of the turn is stored.
            TurnOutcomeUnknownError: the commit was sent but whether it landed cannot be learned now.
            SessionException: the backend is unreachable or refused a write.
        """
        self.metrics.turns_in_progress.inc()
        try:
            if self.fallback.active():
                result = self.fallback.answer(request)
            else:
                try:
                    result = self._managed(request, deadline)
                except BackendUnavailableError as e:
                    # A commit sent and unanswered may have landed: only a turn that stored nothing is answered anew.
                    if not self.fallback.enabled or isinstance(e, TurnNotStoredError | TurnOutcomeUnknownError):
                        raise
                    self.metrics.backend_errors.labels(kind=type(e).__name__).inc()
                    self.fallback.backend_down()
                    logger.warning(
                        "session_id=<%s> | session backend unavailable, answering without a session", request.session_id
                    )
                    result = self.fallback.answer(request)
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

    def _managed(self, request: TurnRequest, deadline: float) -> TurnResult:
        """The turn on the session: speculative on a current-looking cached agent, else under the lease first."""
        session_id = request.session_id
        self.leases.release_pending()
        entry = self.cache.take(session_id)
        if entry is not None and self.settings.speculative_turns and may_speculate(entry, request):
            result = self._speculate(entry, request)
            if result is not None:
                return result
            entry = None  # mispredicted: nothing of it was streamed or stored; run from the backend's state
        try:
            lease = self.leases.take(session_id, deadline, request.idempotency_key)
        except BaseException:
            if entry is not None:
                self.cache.put(session_id, entry)  # still what it was: the next turn may use it
            raise
        started = time.perf_counter()
        verdict = lease_verdict(lease, entry, request)
        if verdict == "not_found":
            # Checked before a replay: another device's Idempotency-Key must not return its answer either.
            self.leases.release(session_id)
            raise SessionNotFoundError(f"session {session_id!r} not found")
        if verdict == "replay":
            # A retry of a turn already committed: its answer, and nothing stored again but the memories its first
            # attempt left pending (its process died before extracting them).
            self.leases.release(session_id)
            logger.debug("session_id=<%s> | idempotent retry answered from the stored turn", session_id)
            self.extraction.finish_all(session_id, lease.get("pending_extractions") or [])
            return TurnResult.from_record(session_id, lease["turn"], started, replayed=True)
        self.leases.renew(session_id)
        try:
            if verdict == "stale":
                # Another process wrote this session since this copy was cached, or the id was deleted and created
                # afresh: start from the backend's state.
                entry = None
            cached = entry is not None
            # The session's active agent, when one is set, takes precedence over the session's own profile.
            profile = self._routed_profile(session_id, lease, request.actor_id) or request.profile
            if entry is not None and entry.fingerprint != fingerprint(profile, request.actor_id):
                entry, cached = None, False  # another profile (version) or actor: rebuilt around the same history
            if entry is None:
                entry = self.builder.build(session_id, request.actor_id, profile)
            entry.routed = lease.get("active_agent") is not None
        except BaseException:
            self.leases.release(session_id)
            raise
        pending = lease.get("pending_extractions") or []
        return self._invoke(request, entry, cached=cached, profile=profile, started=started, pending=pending)

    def _speculate(self, entry: CachedAgent, request: TurnRequest) -> TurnResult | None:
        """The turn on its cached agent, started while the lease request is in flight; None: mispredicted."""
        speculation = Speculation(self.leases, self._lease_executor, entry, request)
        try:
            result = self._invoke(request, entry, cached=True, profile=request.profile, speculation=speculation)
        except BaseException:
            if speculation.failure is not None:  # the lease request itself failed: as without speculation
                raise speculation.failure from None
            if speculation.verdict in (None, "confirmed"):
                raise
            self.metrics.speculative_turns.labels(outcome="mispredicted").inc()
            verdict = speculation.verdict
            logger.debug("session_id=<%s>, verdict=<%s> | speculative start undone", request.session_id, verdict)
            return None
        self.metrics.speculative_turns.labels(outcome="confirmed").inc()
        self.metrics.cache_lookups.labels(result="hit").inc()
        return result

    def _invoke(
        self,
        request: TurnRequest,
        entry: CachedAgent,
        *,
        cached: bool,
        profile: AgentProfile | None,
        speculation: Speculation | None = None,
        started: float | None = None,
        pending: list[dict[str, Any]] | None = None,
    ) -> TurnResult:
        """Invoke `entry`'s agent under the session's lease (held, or, with `speculation`, in flight) and end it.

        Then the turn's memories are extracted, after those of earlier turns the lease handed over (`pending`).
        """
        session_id = request.session_id
        started = time.perf_counter() if started is None else started
        turn_id = uuid.uuid4().hex
        manager = entry.manager
        owner = self.leases.owner
        actor_id = entry.memory.actor_id if entry.memory is not None else None
        recorded = isinstance(manager, PostgreSQLSessionManager)
        extraction = TurnMessages(self.extraction, actor_id, entry.agent, recorded)
        # The lease ends inside the turn's commit (one request fewer), its renewals stopped just before; what the
        # turn leaves to extract is recorded with it.
        context = TurnContext(
            lease_owner=owner,
            turn_id=turn_id,
            idempotency_key=request.idempotency_key,
            ends_lease=lambda: self.leases.stop_renewing(session_id),
            extraction=extraction.record if actor_id is not None else None,
        )
        ttl = self.settings.active_agent_ttl_seconds or None
        invocation_state: dict[str, Any] = {
            HANDOFF_STATE_KEY: lambda agent_id: self.backend.set_active_agent(session_id, agent_id, ttl),
            MODEL_START_KEY: ModelStart(
                gate=speculation.gate if speculation is not None else None, on_start=request.on_model_start
            ),
        }
        lease_ended = False
        manager.begin_turn(context)
        try:
            if speculation is None:  # a speculative turn counts its lookup once confirmed (else it runs again)
                self.metrics.cache_lookups.labels(result="hit" if cached else "miss").inc()
            if entry.memory is not None:
                entry.memory.begin_turn()
            extraction.begin()
            result = run_on_thread_loop(invoke(entry.agent, request.prompt, request.on_text, invocation_state))
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
            lease_ended = manager.end_turn()
            # A lease still in flight is waited for: it must not be taken after its release was sent.
            if (speculation is None or speculation.held()) and not lease_ended:
                self.leases.release(session_id)
            else:
                self.leases.stop_renewing(session_id)
        self.cache.put(session_id, entry)
        if speculation is not None and speculation.lease is not None:
            pending = speculation.lease.get("pending_extractions") or []
        self.extraction.finish_all(session_id, pending or [])
        extraction.finish(session_id, turn_id)
        return TurnResult(
            session_id=session_id,
            response=str(result).strip() if result is not None else "",
            conversation_length=len(entry.agent.messages),
            cached=cached,
            duration_ms=(time.perf_counter() - started) * 1000,
            usage=dict(result.metrics.accumulated_usage) if result is not None else {},
            injected_memory=entry.memory.injected if entry.memory is not None else None,
            agent_id=profile.agent_id if profile is not None else AGENT_ID,
            stop_reason=result.stop_reason if result is not None else None,
        )

    def _routed_profile(self, session_id: str, lease: dict[str, Any], actor_id: str | None) -> AgentProfile | None:
        """The profile the session's active agent names (the lease carries it), or None: the session's own.

        A profile the turn's actor may not use (another actor's, not shared: a `handoff` the model was talked into)
        counts as gone, like a deleted one.
        """
        active = lease.get("active_agent")
        if active is None:
            return None
        profile = self.profiles.get(active["agent_id"])
        if profile is None or not profile.usable_by(actor_id):
            # deleted since the lease was read, or not the actor's to use: the session is back with its own
            logger.info("session_id=<%s>, agent_id=<%s> | active agent profile gone", session_id, active["agent_id"])
            return None
        return profile

    def _resolve(self, session_id: str, turn_id: str, cause: BackendUnavailableError) -> dict[str, Any]:
        """Learn the outcome of a turn whose commit was sent but unanswered (the cached agent is not kept).

        Returns:
            The turn's recorded answer, when it was committed after all.

        Raises:
            TurnNotStoredError: nothing of the turn is stored (now certain: a late batch is refused).
            TurnOutcomeUnknownError: the backend could not tell within the retries.
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
