"""A turn's batch as `PostgreSQLSessionManager` sends it: its writes coalesced, and the messages it stores."""

from __future__ import annotations

from typing import Any

from strands.types.content import Message


def stored_messages(operations: list[dict[str, Any]], agent_id: str) -> list[tuple[int, Message]]:
    """The agent's messages a batch stores, `(message_id, message)` in message order, each as it is last written.

    A redacted message reads as its redaction (what a restore returns).
    """
    messages: dict[int, Message] = {}
    for op in operations:
        if op["op"] in ("create_message", "update_message") and op["agent_id"] == agent_id:
            stored = op["message"]
            messages[int(stored["message_id"])] = stored.get("redact_message") or stored["message"]
    return sorted(messages.items(), key=lambda item: item[0])


def coalesce(
    pending: list[dict[str, Any]], versions: dict[tuple[str, str], int], session_id: str
) -> list[dict[str, Any]]:
    """Keep every message write in order; of several updates of one agent keep the last.

    The update kept is conditional on the version read before the turn (`if_version`).
    """
    last_update = {op["agent"]["agent_id"]: i for i, op in enumerate(pending) if op["op"] == "update_agent"}
    out = []
    for i, op in enumerate(pending):
        if op["op"] == "update_agent":
            agent_id = op["agent"]["agent_id"]
            if last_update[agent_id] != i:
                continue
            op = op | {"if_version": versions.get((session_id, agent_id))}
        out.append(op)
    return out
