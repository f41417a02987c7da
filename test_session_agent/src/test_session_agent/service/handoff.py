"""The built-in `handoff` tool: a manager agent hands the conversation to a specialist agent profile.

It sets the session's active agent (stored by the backend), so the session's next turns, on any replica, go to
that profile until the choice lapses or is deleted. The agent service passes the setter in the invocation state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strands import tool
from strands.types.tools import ToolContext

HANDOFF_STATE_KEY = "set_active_agent"
"""Invocation-state key of the callable `(agent_id) -> None` that routes the current session to a profile."""


@tool(context=True)
def handoff(agent_id: str, tool_context: ToolContext) -> str:
    """Hand this conversation over to another agent: the user's next messages go to that agent.

    Use it when another agent (a specialist) is better placed to answer the user from now on.

    Args:
        agent_id: id of the agent profile to hand over to.
        tool_context: provided by Strands (not a model argument).
    """
    route: Callable[[str], Any] | None = tool_context.invocation_state.get(HANDOFF_STATE_KEY)
    if route is None:
        raise ValueError("handoff works only in a session of the agent service")
    route(agent_id)
    return f"the conversation is handed over to agent {agent_id}; it answers the next message"
