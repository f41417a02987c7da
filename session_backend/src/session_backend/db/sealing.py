"""Sealed values: the token format, the kinds of values, and sealing and opening under one data key.

A sealed value is a token `~sb1~<key_id>~<base64(nonce || ciphertext)>` (AES-256-GCM). Nonces are synthetic
(HMAC-SHA256 of the associated data and the plaintext under a key derived from the data key, as in SIV): equal values
of one actor and kind seal to equal tokens, which keeps the SQL that compares values working (a retried message
append, the per-actor memory dedup); the database can tell that two values are equal, nothing more. The associated
data is `sb1|<kind>|<scope>`: a token cannot be moved to another kind of value (a message into agent state) or opened
as another scope's, unnoticed. Data keys, their wrapping and the codec the stores use are in `db/encryption.py`.
"""

from __future__ import annotations

import binascii
import hmac
import re
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service_kit import jsoncodec

from ..schemas.common import SEALED_PREFIX
from .errors import StoreError

TOKEN_PREFIX = SEALED_PREFIX
"""Start of every sealed value (`~` is in no identifier, and the schemas refuse clear strings stored beside sealed
values that start with it, so no clear value of the API can look like a token)."""

# Kinds of sealed values: part of the associated data, so a token only opens as the kind it was sealed as.
MESSAGE = "message"
AGENT = "agent"
MULTI_AGENT = "multi_agent"
TURN = "turn"
WINDOW = "window"
STORAGE = "storage"
MEMORY = "memory"

STORAGE_SCOPE = "storage"
"""Scope of storage objects outside `session/<id>/` (Strands `Storage` used directly): one shared data key."""

_KEY_ID = r"[A-Za-z0-9_-]{22}"
# The payload is standard base64 (binascii's, the fastest to decode: a restore opens one token per message); JSON
# never escapes its characters.
QUOTED_TOKEN = re.compile(rf'"~sb1~({_KEY_ID})~([A-Za-z0-9+/=]+)"')
BARE_TOKEN = re.compile(rf"~sb1~({_KEY_ID})~([A-Za-z0-9+/=]+)")


class EncryptionError(StoreError):
    """Sealed data cannot be opened: its data key was destroyed (an erased actor) or the data was tampered with."""

    status = 500
    title = "Internal Server Error"


def actor_scope(actor_id: str) -> str:
    """The data-key scope of an actor's data (sessions with this actor, memories)."""
    return f"actor:{actor_id}"


def session_scope(session_id: str) -> str:
    """The data-key scope of a session without an actor."""
    return f"session:{session_id}"


class DataKey:
    """An unwrapped data key: seals and opens values of its scope.

    Args:
        key_id: its id (in every token it seals).
        scope: `actor:<id>`, `session:<id>` or `storage` (part of the associated data).
        material: the 32 secret bytes; an encryption key and a nonce key are derived from them.
    """

    def __init__(self, key_id: str, scope: str, material: bytes) -> None:
        """Derive the subkeys."""
        self.key_id = key_id
        self.scope = scope
        self._aead = AESGCM(hmac.digest(material, b"sb1 encryption", "sha256"))
        self._nonce_key = hmac.digest(material, b"sb1 nonce", "sha256")
        self._aad = {kind: f"sb1|{kind}|{scope}".encode() for kind in (MESSAGE, AGENT, MULTI_AGENT, TURN, WINDOW)}

    def _associated(self, kind: str) -> bytes:
        return self._aad.get(kind) or f"sb1|{kind}|{self.scope}".encode()

    def seal(self, kind: str, plaintext: bytes) -> str:
        """The token of `plaintext` (deterministic: equal plaintexts of one kind give equal tokens)."""
        aad = self._associated(kind)
        nonce = hmac.digest(self._nonce_key, aad + b"\x00" + plaintext, "sha256")[:12]
        sealed = binascii.b2a_base64(nonce + self._aead.encrypt(nonce, plaintext, aad), newline=False).decode()
        return f"{TOKEN_PREFIX}{self.key_id}~{sealed}"

    def open(self, kind: str, payload: str) -> bytes:
        """The plaintext of a token's payload (the part after the key id).

        Raises:
            EncryptionError: it does not open as `kind` of this scope (tampered, moved, or not ours).
        """
        try:
            raw = binascii.a2b_base64(payload, strict_mode=True)
            return self._aead.decrypt(raw[:12], raw[12:], self._associated(kind))
        except Exception as e:
            raise EncryptionError(f"a stored {kind} value does not open with its data key") from e


class Sealer:
    """Seals the values of one write under one data key; the identity when `key` is None (encryption off)."""

    def __init__(self, key: DataKey | None) -> None:
        """Keep the key."""
        self.key = key

    def text(self, kind: str, json_text: str | None) -> str | None:
        """JSON text of a value → JSON text to store (a JSON string holding the token); None stays None."""
        if self.key is None or json_text is None:
            return json_text
        return f'"{self.key.seal(kind, json_text.encode())}"'

    def value(self, kind: str, value: Any) -> Any:
        """A value for a `json` column → the value to store (the token as a string); None stays None."""
        if self.key is None or value is None:
            return value
        return self.key.seal(kind, jsoncodec.dumps(value))

    def content(self, text: str) -> str:
        """A memory's content → the text to store (the token of its JSON string)."""
        if self.key is None:
            return text
        return self.key.seal(MEMORY, jsoncodec.dumps(text))

    def data(self, data: bytes) -> bytes:
        """A storage value → the bytes to store (the token, ASCII)."""
        if self.key is None:
            return data
        return self.key.seal(STORAGE, data).encode()


IDENTITY = Sealer(None)
"""The sealer of encryption off: values are stored as they are."""
