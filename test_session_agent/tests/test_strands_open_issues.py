"""Issue 24, part 2 (this branch's items): Strands 1.62 persistence problems, reproduced on our client and kept.

- Redaction of older messages: Strands 1.62 rewrites, on a guardrail redaction, every stored record holding the
  redacted prompt dict (a retried prompt), not only the latest message; the backend keeps each rewrite.
- #3651, a turn interrupted mid-tool: a process killed between `toolUse` and `toolResult` leaves a session whose
  next turn works (with `PostgreSQLSessionManager` nothing of the killed turn is stored; with Strands'
  `RepositorySessionManager` on our repository the orphaned `toolUse` is stored and Strands repairs it on restore).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterable
from typing import Any

import httpx
import pytest
from strands import Agent
from strands.session.repository_session_manager import RepositorySessionManager
from strands.types.content import Messages
from strands.types.streaming import StreamEvent

from test_session_agent import PostgreSQLSessionManager, PostgreSQLSessionRepository
from test_session_agent.models.scripted import ScriptedModel

pytestmark = pytest.mark.integration


class RedactingModel(ScriptedModel):
    """The scripted model behind a guardrail: a prompt holding a card number is redacted before the reply."""

    async def stream(self, messages: Messages, *args: Any, **kwargs: Any) -> AsyncIterable[StreamEvent]:
        if any("4111" in block.get("text", "") for block in messages[-1]["content"]):
            yield {"redactContent": {"redactUserContentMessage": "[card number redacted]"}}
        async for event in super().stream(messages, *args, **kwargs):
            yield event


def stored_texts(backend_url: str, session_id: str) -> list[str]:
    page = httpx.get(f"{backend_url}/v1/sessions/{session_id}/agents/default/messages").json()
    items = page["items"] if isinstance(page, dict) else page
    return [block.get("text", "") for item in items for block in (item["redact_message"] or item["message"])["content"]]


def test_redaction_of_older_messages_is_kept(backend_url: str) -> None:
    """A retried prompt stored twice, then redacted: both records are rewritten and stay so after a restore."""
    sid = f"redact-{uuid.uuid4().hex[:8]}"
    prompt: Any = {"role": "user", "content": [{"text": "my card is 4111 1111 1111 1111"}]}
    guarded = Agent(
        model=ScriptedModel(),
        session_manager=PostgreSQLSessionManager(sid, base_url=backend_url),
        callback_handler=None,
    )
    guarded([prompt])  # first try: no guardrail yet (a model without it answered)
    guarded.model = RedactingModel()
    guarded([prompt])  # the same prompt dict again: the guardrail redacts it, in both records
    texts = stored_texts(backend_url, sid)  # (the scripted replies quote what the model saw: not checked)
    assert len(texts) == 4 and texts[0] == texts[2] == "[card number redacted]", texts

    restored = Agent(
        model=ScriptedModel(),
        session_manager=PostgreSQLSessionManager(sid, base_url=backend_url),
        callback_handler=None,
    )
    assert [m["content"] for m in restored.messages if m["role"] == "user"] == [
        [{"text": "[card number redacted]"}]
    ] * 2
    restored("hello")
    assert len(stored_texts(backend_url, sid)) == 6


KILLED_TURN = """
import os, signal, sys
from strands import Agent, tool
from strands.session.repository_session_manager import RepositorySessionManager
from test_session_agent import PostgreSQLSessionManager, PostgreSQLSessionRepository
from test_session_agent.models.scripted import ScriptedModel

@tool
def transfer(amount: int) -> str:
    '''Move money (the process dies here, between the toolUse and its toolResult).

    Args:
        amount: how much.
    '''
    os.kill(os.getpid(), signal.SIGKILL)
    return "never"

url, sid, kind = sys.argv[1:4]
if kind == "batched":
    manager = PostgreSQLSessionManager(sid, base_url=url)
else:
    manager = RepositorySessionManager(session_id=sid, session_repository=PostgreSQLSessionRepository(base_url=url))
agent = Agent(model=ScriptedModel(), tools=[transfer], session_manager=manager, callback_handler=None)
agent("hello")
agent('use transfer {"amount": 100}')
"""


@pytest.mark.parametrize("kind", ["batched", "write_through"])
def test_3651_a_turn_killed_mid_tool_leaves_a_usable_session(backend_url: str, kind: str) -> None:
    sid = f"killed-{kind.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_TURN), backend_url, sid, kind],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == -9, done.stderr  # SIGKILL inside the tool
    stored = len(stored_texts(backend_url, sid))
    # Batched: the killed turn is not stored at all; write-through: its prompt and toolUse are.
    assert stored == (2 if kind == "batched" else 4)

    manager: Any = (
        PostgreSQLSessionManager(sid, base_url=backend_url)
        if kind == "batched"
        else RepositorySessionManager(
            session_id=sid, session_repository=PostgreSQLSessionRepository(base_url=backend_url)
        )
    )
    agent = Agent(model=ScriptedModel(), session_manager=manager, callback_handler=None)
    result = agent("are you still there?")
    assert "you said: are you still there?" in str(result)
    roles = [m["role"] for m in agent.messages]
    assert roles[-2:] == ["user", "assistant"]
    # The history the model saw pairs every toolUse with a toolResult (Strands' repair for the orphaned one).
    for i, message in enumerate(agent.messages):
        uses = [b["toolUse"]["toolUseId"] for b in message["content"] if "toolUse" in b]
        if uses:
            results = [b["toolResult"]["toolUseId"] for b in agent.messages[i + 1]["content"] if "toolResult" in b]
            assert results == uses
    # And a later process restores it again and goes on.
    again = Agent(
        model=ScriptedModel(),
        session_manager=PostgreSQLSessionManager(sid, base_url=backend_url),
        callback_handler=None,
    )
    assert "you said: once more" in str(again("once more"))
