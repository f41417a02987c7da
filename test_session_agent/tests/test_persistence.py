"""A Strands Agent with PostgreSQLSessionManager, restored in a fresh process, keeps messages, state and the
conversation manager's state (sliding window: removed_message_count survives)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid

import pytest

from test_session_agent.models.scripted import echo_script

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from strands import Agent
    from strands.agent.conversation_manager import SlidingWindowConversationManager
    from test_session_agent import PostgreSQLSessionManager
    from test_session_agent.models.scripted import ScriptedModel

    base_url, session_id, turns = sys.argv[1], sys.argv[2], int(sys.argv[3])
    agent = Agent(
        model=ScriptedModel(),
        agent_id="default",
        session_manager=PostgreSQLSessionManager(session_id, base_url=base_url),
        conversation_manager=SlidingWindowConversationManager(window_size=4),
        callback_handler=None,
    )
    restored = json.loads(json.dumps({
        "messages": agent.messages,
        "state": agent.state.get(),
        "cm": agent.conversation_manager.get_state(),
    }))
    replies = []
    for i in range(turns):
        agent.state.set("turns", (agent.state.get("turns") or 0) + 1)
        replies.append(str(agent(f"prompt {i}")).strip())
    print(json.dumps({"restored": restored, "replies": replies, "messages": agent.messages,
                      "state": agent.state.get(), "cm": agent.conversation_manager.get_state()}))
    """
)


def run_fresh_process(backend_url: str, session_id: str, turns: int) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, backend_url, session_id, str(turns)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_agent_restored_in_fresh_process(backend_url: str) -> None:
    session_id = f"p-{uuid.uuid4().hex[:10]}"
    first = run_fresh_process(backend_url, session_id, turns=4)
    assert first["restored"]["messages"] == []
    assert first["cm"]["removed_message_count"] > 0, "the sliding window should have trimmed"
    assert first["state"] == {"turns": 4}

    second = run_fresh_process(backend_url, session_id, turns=0)
    assert second["restored"]["messages"] == first["messages"]
    assert second["restored"]["state"] == {"turns": 4}
    assert second["restored"]["cm"]["removed_message_count"] == first["cm"]["removed_message_count"]

    third = run_fresh_process(backend_url, session_id, turns=1)
    # the scripted model's reply describes what it saw: the restored window plus this prompt, nothing else
    seen = [*third["restored"]["messages"], {"role": "user", "content": [{"text": "prompt 0"}]}]
    assert third["replies"][0] == echo_script(seen)
    assert third["state"] == {"turns": 5}
