"""The agent's context window after its conversation manager's reductions, recorded with each turn.

Strands restores a session by listing the log from `removed_message_count` (strands-agents #4270, #4027): messages a
conversation manager kept out of order (`pin_first`) or changed in place (pinned flags, truncated tool results) come
back wrong, and a summarizing manager works again with the model. Recording the window (stored messages by id, the
others inline) lets a restore rebuild exactly the window the previous process had, with no model call.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import orjson
from strands.types.session import encode_bytes_values


def digest(message: Any) -> bytes:
    """A fingerprint of a message's content (keys sorted; integers of any size; bytes by value)."""
    try:
        data = orjson.dumps(message, option=orjson.OPT_SORT_KEYS, default=repr)
    except TypeError:  # an integer beyond 64 bits
        data = json.dumps(message, sort_keys=True, default=repr).encode()
    return hashlib.blake2b(data, digest_size=16).digest()


@dataclass
class StoredMessages:
    """What the backend holds of one agent's messages: per tracking id, the message_id and the stored content's digest.

    Attributes:
        by_tracking_id: tracking_id → (message_id, digest of the content stored there; None: never matches).
        upto: the last message_id stored (-1: none).
        window_stored: a window is recorded in the backend (so a trivial one must clear it).
    """

    by_tracking_id: dict[str, tuple[int, bytes | None]] = field(default_factory=dict)
    upto: int = -1
    window_stored: bool = False

    def stored(self, message_id: int, message: Any) -> None:
        """Note that `message` is now stored at `message_id`."""
        tracking_id = message.get("tracking_id")
        if tracking_id is not None:
            self.by_tracking_id[tracking_id] = (message_id, digest(message))
        self.upto = max(self.upto, message_id)

    def window(self, messages: list[Any], removed_message_count: int) -> dict[str, Any] | None:
        """The window entries of `messages` (the agent's live context), or None when it is the log's plain tail.

        Returns:
            `{"upto", "entries"}` for a `set_context_window` operation, or None when restoring the log from
            `removed_message_count` gives `messages` back unchanged.
        """
        entries: list[dict[str, Any]] = []
        for message in messages:
            known = self.by_tracking_id.get(message.get("tracking_id") or "")
            if known is not None and known[1] == digest(message):
                entries.append({"message_id": known[0]})
            else:
                entry = {"message": encode_bytes_values(message)}
                entries.append(entry | ({"message_id": known[0]} if known is not None else {}))
        ids = [e.get("message_id") if "message" not in e else None for e in entries]
        if ids == list(range(removed_message_count, self.upto + 1)):
            return None
        return {"upto": self.upto, "entries": entries}
