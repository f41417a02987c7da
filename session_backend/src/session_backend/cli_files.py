"""`session-backend import-files DIR` and `session-backend export SESSION_ID`.

Move a Strands `FileSessionManager` storage directory into PostgreSQL (idempotent), and dump one session as NDJSON.
Each session is imported in a transaction of its own: a session that cannot be imported (broken JSON, NaN, a gap in
its message ids, a value PostgreSQL refuses) is reported with its reason and leaves nothing behind; the others are
imported. Values are read and written with `service_kit.jsoncodec`, so integers of any size and U+0000 stay exact.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import asyncpg

from service_kit import jsoncodec

from .db.encryption import Codec
from .db.errors import AlreadyExists, Conflict, NotFound, StoreError
from .db.group_commit import Writer
from .db.keys import KeyConfigurationError, KeyProvider, key_provider, rotate
from .db.migrations import apply_migrations
from .db.pool import EmbeddedPostgres, create_pool
from .db.sessions import SessionStore
from .db.turns import TurnStore
from .schemas.sessions import AgentBody, MessageBody, MultiAgentCreate, SessionCreate
from .settings import Settings, get_settings
from .sql import export as export_sql

logger = logging.getLogger(__name__)

# FileSessionManager's layout: <dir>/session_<sid>/{session.json, agents/agent_<aid>/{agent.json,
# messages/message_<n>.json}, multi_agents/multi_agent_<id>/multi_agent.json}.
SESSION_PREFIX = "session_"
AGENT_PREFIX = "agent_"
MESSAGE_PREFIX = "message_"
MULTI_AGENT_PREFIX = "multi_agent_"
BATCH = 500


@dataclass
class ImportCounts:
    """What an import wrote, and what it found already there (a re-run writes nothing)."""

    sessions: int = 0
    agents: int = 0
    messages: int = 0
    multi_agents: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(session directory name, reason) of each session not imported (nothing of it was written)."""

    def summary(self) -> str:
        """One line for the end of the run, then one line per session not imported (its id and why)."""
        text = (
            f"imported {self.sessions} sessions, {self.agents} agents, {self.messages} messages, "
            f"{self.multi_agents} multi-agents ({self.unchanged} already present)"
        )
        if not self.skipped:
            return text
        lines = [f"{text}; {len(self.skipped)} sessions not imported:"]
        lines += [f"  {name[len(SESSION_PREFIX) :]}: {reason}" for name, reason in self.skipped]
        return "\n".join(lines)


class _OneConnection:
    """The pool interface the stores use, over one connection in a transaction (an import's session).

    Every statement runs in a savepoint of its own, so a statement that fails (a retried batch's conflict, which the
    import answers by updating) leaves the enclosing transaction usable.
    """

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        yield self.conn

    async def fetch(self, *args: Any) -> Any:
        async with self.conn.transaction():
            return await self.conn.fetch(*args)

    async def fetchrow(self, *args: Any) -> Any:
        async with self.conn.transaction():
            return await self.conn.fetchrow(*args)

    async def fetchval(self, *args: Any) -> Any:
        async with self.conn.transaction():
            return await self.conn.fetchval(*args)

    async def execute(self, *args: Any) -> Any:
        async with self.conn.transaction():
            return await self.conn.execute(*args)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = jsoncodec.loads(path.read_bytes())  # strict: NaN and Infinity are refused
    except ValueError as e:
        raise ValueError(f"{path.name}: not JSON ({e})") from e
    if not isinstance(value, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return value


def _message_files(agent_dir: Path) -> list[Path]:
    files = []
    for path in (agent_dir / "messages").glob(f"{MESSAGE_PREFIX}*.json"):
        index = path.name[len(MESSAGE_PREFIX) : -len(".json")]
        if index.isdigit():
            files.append((int(index), path))
    return [path for _, path in sorted(files)]


def _check_contiguous(agent_dir: Path, files: list[Path]) -> None:
    """Raise ValueError when the message files are not numbered 0, 1, 2, ... (FileSessionManager's ids)."""
    for expected, path in enumerate(files):
        index = int(path.name[len(MESSAGE_PREFIX) : -len(".json")])
        if index != expected:
            raise ValueError(f"{agent_dir.name}: message ids jump from {expected - 1} to {index} (a file is missing)")


def session_dirs(root: Path) -> Iterator[Path]:
    """The session directories of a FileSessionManager storage directory, in name order."""
    for path in sorted(root.glob(f"{SESSION_PREFIX}*")):
        if (path / "session.json").is_file():
            yield path


def count_messages(root: Path) -> int:
    """How many message files the import will go through (the progress bar's total)."""
    return sum(
        len(_message_files(agent)) for s in session_dirs(root) for agent in (s / "agents").glob(f"{AGENT_PREFIX}*")
    )


async def import_session(store: SessionStore, session_dir: Path, counts: ImportCounts, progress: Any = None) -> None:
    """Import one session directory; what is already stored identically is left alone, what differs is updated.

    Raises:
        ValueError, pydantic.ValidationError: a file is not what FileSessionManager writes.
    """
    session = SessionCreate.model_validate(_read_json(session_dir / "session.json"))
    sid = session.session_id
    try:
        await store.create_session(
            sid, session.session_type, created_at=session.created_at, updated_at=session.updated_at
        )
        counts.sessions += 1
    except AlreadyExists:
        counts.unchanged += 1
    for agent_dir in sorted((session_dir / "agents").glob(f"{AGENT_PREFIX}*")):
        if not (agent_dir / "agent.json").is_file():
            continue
        agent = AgentBody.model_validate(_read_json(agent_dir / "agent.json")).model_dump()
        try:
            await store.create_agent(sid, agent)
            counts.agents += 1
        except AlreadyExists:
            await store.update_agent(sid, agent["agent_id"], agent)
            counts.unchanged += 1
        files = _message_files(agent_dir)
        _check_contiguous(agent_dir, files)
        for start in range(0, len(files), BATCH):
            chunk = files[start : start + BATCH]
            messages = [MessageBody.model_validate(_read_json(p)).model_dump(mode="json") for p in chunk]
            await _import_messages(store, sid, agent["agent_id"], messages, counts)
            if progress is not None:
                progress(len(chunk))
    for multi_dir in sorted((session_dir / "multi_agents").glob(f"{MULTI_AGENT_PREFIX}*")):
        if not (multi_dir / "multi_agent.json").is_file():
            continue
        multi_id = multi_dir.name[len(MULTI_AGENT_PREFIX) :]
        body = MultiAgentCreate.model_validate({"id": multi_id, "state": _read_json(multi_dir / "multi_agent.json")})
        try:
            await store.create_multi_agent(sid, body.id, body.state)
            counts.multi_agents += 1
        except AlreadyExists:
            await store.update_multi_agent(sid, body.id, body.state)
            counts.unchanged += 1


async def _import_messages(
    store: SessionStore, session_id: str, agent_id: str, messages: list[dict[str, Any]], counts: ImportCounts
) -> None:
    operations = [{"op": "create_message", "agent_id": agent_id, "message": m} for m in messages]
    try:
        result = await TurnStore(store.writer).apply_batch(session_id, operations)
    except Conflict:
        # A message differs from the stored one at its id (the file was edited since a first import): the file wins.
        for message in messages:
            try:
                inserted, _ = await store.create_message(session_id, agent_id, message)
                counts.messages += int(inserted)
                counts.unchanged += int(not inserted)
            except Conflict:
                await store.update_message(session_id, agent_id, message["message_id"], message)
                counts.messages += 1
        return
    counts.messages += result["created_messages"]
    counts.unchanged += result["existing_messages"]


async def import_files(
    pool: asyncpg.Pool, root: Path, *, show_progress: bool = True, provider: KeyProvider | None = None
) -> ImportCounts:
    """Import every session of a FileSessionManager storage directory, with a progress bar over its messages.

    Each session in its own transaction: one that fails is rolled back whole, reported in `skipped` and the import
    goes on with the next.

    Args:
        pool: a pool on the target database (migrated).
        root: the directory given to `FileSessionManager(storage_dir=...)`.
        show_progress: draw the progress bar (on stderr).
        provider: the wrapping key (encryption at rest): content is sealed as the service seals it; None: off.

    Returns:
        The counts of what was written and what was already there.
    """
    # rich is a dependency still to be declared (installed today only through the dev tools): import it lazily.
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    counts = ImportCounts()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not show_progress, transient=False) as progress:
        task = progress.add_task("messages", total=count_messages(root))
        for session_dir in session_dirs(root):
            progress.update(task, description=session_dir.name[len(SESSION_PREFIX) :][:40])
            attempt = ImportCounts()
            try:
                async with pool.acquire() as conn, conn.transaction():
                    one = _OneConnection(conn)
                    store = SessionStore(Writer(one, codec=Codec(one, provider)))  # type: ignore[arg-type]
                    await import_session(store, session_dir, attempt, lambda n: progress.advance(task, n))
            except (ValueError, StoreError, asyncpg.PostgresError) as e:
                reason = getattr(e, "detail", None) or str(e) or type(e).__name__
                logger.warning("directory=<%s>, error=<%s> | skipped session", session_dir, reason)
                counts.skipped.append((session_dir.name, reason.splitlines()[0][:300]))
                continue
            counts.sessions += attempt.sessions
            counts.agents += attempt.agents
            counts.messages += attempt.messages
            counts.multi_agents += attempt.multi_agents
            counts.unchanged += attempt.unchanged
    return counts


async def export_session(store: SessionStore, session_id: str, out: IO[bytes]) -> int:
    """Write a session as NDJSON: the session, then per agent the agent and its messages, then multi-agents.

    Each line is `{"type": "session" | "agent" | "message" | "multi_agent", ...}` with the REST API's JSON.

    Returns:
        How many lines were written.

    Raises:
        NotFound: no such session.
    """
    lines = 0

    def emit(kind: str, body: Any, **extra: Any) -> None:
        nonlocal lines
        out.write(jsoncodec.dumps({"type": kind, **extra, **body}) + b"\n")
        lines += 1

    emit("session", jsoncodec.loads(await store.get_session(session_id)))
    async with store.pool.acquire() as conn:
        agent_ids = [r[0] for r in await conn.fetch(export_sql.LIST_AGENT_IDS, session_id)]
        multi_ids = [r[0] for r in await conn.fetch(export_sql.LIST_MULTI_AGENT_IDS, session_id)]
    for agent_id in agent_ids:
        emit("agent", jsoncodec.loads((await store.get_agent(session_id, agent_id)).body))
        for message in jsoncodec.loads((await store.list_messages(session_id, agent_id, offset=0, limit=None))[0]):
            emit("message", message, agent_id=agent_id)
    for multi_id in multi_ids:
        emit("multi_agent", jsoncodec.loads(await store.get_multi_agent(session_id, multi_id)))
    return lines


async def _with_store(settings: Settings, action: Any) -> Any:
    embedded = None
    dsn = settings.database_url
    if dsn is None:
        embedded = await asyncio.to_thread(EmbeddedPostgres, settings.data_dir / "postgres")
        dsn = embedded.dsn
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn)
        return await action(pool)
    finally:
        await pool.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def rotate_key(settings: Settings) -> int:
    """Re-wrap every data key under the configured key (`rotate-key`); print what was done.

    Returns:
        The process exit status: 0 done, 2 no key configured or a data key whose wrapping key is not given.
    """
    try:
        provider = key_provider(settings)
    except KeyConfigurationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if provider is None:
        print("error: set SESSION_BACKEND_ENCRYPTION_KEY (the new key) to rotate to", file=sys.stderr)
        return 2

    async def run(pool: asyncpg.Pool) -> int:
        return await rotate(pool, provider)

    try:
        count = asyncio.run(_with_store(settings, run))
    except KeyConfigurationError as e:
        print(f"error: {e} (give every old key in SESSION_BACKEND_ENCRYPTION_OLD_KEYS)", file=sys.stderr)
        return 2
    print(
        f"re-wrapped {count} data keys under {provider.current_key_id}; every data key is wrapped by it now, "
        "so SESSION_BACKEND_ENCRYPTION_OLD_KEYS can be removed",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str]) -> int:
    """Run `import-files DIR`, `export SESSION_ID [-o FILE]` or `rotate-key` on `DATABASE_URL` (else embedded).

    Returns:
        The process exit status.
    """
    parser = argparse.ArgumentParser(prog="session-backend")
    commands = parser.add_subparsers(dest="command", required=True)
    importer = commands.add_parser("import-files", help="import a FileSessionManager storage directory")
    importer.add_argument("directory", type=Path)
    importer.add_argument("--no-progress", action="store_true", help="no progress bar")
    exporter = commands.add_parser("export", help="write one session as NDJSON")
    exporter.add_argument("session_id")
    exporter.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    commands.add_parser(
        "rotate-key",
        help="re-wrap every data key under SESSION_BACKEND_ENCRYPTION_KEY; the keys it replaces are given in "
        "SESSION_BACKEND_ENCRYPTION_OLD_KEYS (data is not re-encrypted)",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")

    if args.command == "rotate-key":
        return rotate_key(settings)

    if args.command == "import-files":
        if not args.directory.is_dir():
            parser.error(f"{args.directory} is not a directory")

        async def run_import(pool: asyncpg.Pool) -> ImportCounts:
            return await import_files(
                pool, args.directory, show_progress=not args.no_progress, provider=key_provider(settings)
            )

        counts: ImportCounts = asyncio.run(_with_store(settings, run_import))
        print(counts.summary())
        return 1 if counts.skipped else 0

    async def run_export(pool: asyncpg.Pool) -> int:
        store = SessionStore(Writer(pool, codec=Codec(pool, key_provider(settings))))
        if args.output is None:
            return await export_session(store, args.session_id, sys.stdout.buffer)
        with args.output.open("wb") as out:
            return await export_session(store, args.session_id, out)

    try:
        lines = asyncio.run(_with_store(settings, run_export))
    except NotFound as e:
        print(f"error: {e.detail}", file=sys.stderr)
        return 1
    print(f"exported {lines} records", file=sys.stderr)
    return 0
