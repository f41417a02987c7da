"""Seeding for the benchmarks: the same N messages (≈250 bytes of text each) in PostgreSQL and in FileSessionManager."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from strands.session.file_session_manager import FileSessionManager
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from session_backend.db.encryption import Codec
from session_backend.db.keys import load_key_provider
from session_backend.db.migrations import apply_migrations
from session_backend.db.sealing import MESSAGE

from .common import encryption_key

TEXT = ("The quick brown fox jumps over the lazy dog while the session backend keeps every word safe. " * 3)[:250]


def message(i: int) -> dict[str, Any]:
    """The i-th message of a benchmark conversation (user/assistant alternating, 250 characters of text)."""
    return {"role": "user" if i % 2 == 0 else "assistant", "content": [{"text": f"{i}: {TEXT}"}]}


def seed_postgres(database_url: str, session_id: str, count: int, agent_id: str = "default") -> None:
    """Create the schema (if needed) and one session whose agent holds `count` messages, with COPY.

    With `--encryption` the messages are sealed as the backend seals them (the session's own data key).
    """

    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await apply_migrations(conn)
            async with conn.transaction():
                await conn.execute("INSERT INTO sessions (session_id) VALUES ($1)", session_id)
                key = encryption_key()
                provider = load_key_provider(key, None, None) if key else None
                codec = Codec(conn, provider)  # type: ignore[arg-type]
                sealer = await codec.for_session(conn, session_id)
                await conn.execute(
                    "INSERT INTO agents (session_id, agent_id, conversation_manager_state) VALUES ($1, $2, $3::jsonb)",
                    session_id,
                    agent_id,
                    orjson.dumps({"removed_message_count": 0, "__name__": "SlidingWindowConversationManager"}).decode(),
                )
                now = datetime.now(UTC)
                stamp = now.isoformat(timespec="microseconds")
                rows = []
                for i in range(count):
                    sealed = sealer.value(MESSAGE, message(i))
                    text = orjson.dumps(sealed).decode()
                    body = orjson.dumps(
                        {
                            "message": sealed,
                            "message_id": i,
                            "redact_message": None,
                            "created_at": stamp,
                            "updated_at": stamp,
                        }
                    ).decode()
                    rows.append((session_id, agent_id, i, text, now, now, body))
                await conn.copy_records_to_table(
                    "messages",
                    records=rows,
                    columns=["session_id", "agent_id", "message_id", "message", "created_at", "updated_at", "body"],
                )
        finally:
            await conn.close()

    asyncio.run(run())


def seed_files(storage_dir: str, session_id: str, count: int, agent_id: str = "default") -> None:
    """The same conversation through Strands' FileSessionManager repository methods."""
    manager = FileSessionManager.__new__(FileSessionManager)
    manager.storage_dir = storage_dir
    manager.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
    manager.create_agent(
        session_id,
        SessionAgent(
            agent_id=agent_id,
            state={},
            conversation_manager_state={"removed_message_count": 0, "__name__": "SlidingWindowConversationManager"},
        ),
    )
    for i in range(count):
        manager.create_message(session_id, agent_id, SessionMessage(message=message(i), message_id=i))  # type: ignore[arg-type]
