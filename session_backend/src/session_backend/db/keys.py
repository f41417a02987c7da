"""Wrapping keys of encryption at rest (envelope encryption, see `encryption.py`): who supplies them, and rotation.

A `KeyProvider` wraps and unwraps the data keys of `data_keys`; `LocalKeyProvider` holds the configured key (and old
keys during a rotation) in process; a KMS-backed provider implements the same four members. `rotate` re-wraps data
keys under the current key without re-encrypting any data.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import asyncpg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..sql import encryption as sql

_WRAP_AAD = b"session-backend data key v1"


class KeyConfigurationError(RuntimeError):
    """The configured wrapping keys do not fit the database (wrong key, missing old key, malformed key)."""


class KeyProvider(Protocol):
    """Supplies the wrapping key of data keys (envelope encryption): the local key file, or a KMS.

    `wrap` uses the current wrapping key; `unwrap` any key it knows by id (old keys during a rotation).
    """

    @property
    def current_key_id(self) -> str:
        """Id of the wrapping key new data keys are wrapped with."""
        ...

    def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        """Wrap a 32-byte data key; returns `(wrapping_key_id, wrapped)`."""
        ...

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        """Unwrap a data key wrapped by the wrapping key `key_id`.

        Raises:
            KeyConfigurationError: no such wrapping key, or the wrapped key does not open with it.
        """
        ...

    def knows(self, key_id: str) -> bool:
        """Whether `unwrap` can use the wrapping key `key_id`."""
        ...


def _fingerprint(key: bytes) -> str:
    return "local-" + hashlib.sha256(b"session-backend wrapping key id\x00" + key).hexdigest()[:16]


def decode_key(text: str, where: str) -> bytes:
    """A 32-byte key from its base64 text (standard or URL-safe alphabet, padding optional).

    Raises:
        KeyConfigurationError: not base64 of exactly 32 bytes.
    """
    value = text.strip()
    try:
        key = base64.b64decode(
            value + "=" * (-len(value) % 4), altchars=b"-_" if "-" in value or "_" in value else None
        )
    except ValueError as e:
        raise KeyConfigurationError(f"{where} is not base64: {e}") from e
    if len(key) != 32:
        raise KeyConfigurationError(f"{where} must be 32 bytes of base64 (AES-256), got {len(key)} bytes")
    return key


class LocalKeyProvider:
    """Wrapping keys held by this process (from `SESSION_BACKEND_ENCRYPTION_KEY` or its key file).

    Data keys are wrapped with AES-256-GCM under the current key (random nonce). A key's id is a digest of it (it
    reveals nothing of the key), so a wrong key is told apart from the right one at start-up.

    Args:
        current: the wrapping key new data keys are wrapped with (32 bytes).
        old: keys that may still unwrap data keys (during a rotation).
    """

    def __init__(self, current: bytes, old: Sequence[bytes] = ()) -> None:
        """Keep the keys by id."""
        self._current = _fingerprint(current)
        self._keys = {_fingerprint(k): AESGCM(k) for k in (*old, current)}

    @property
    def current_key_id(self) -> str:
        """Id of the current wrapping key."""
        return self._current

    def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        """Wrap `data_key` under the current key: `(key_id, nonce || ciphertext)`."""
        nonce = os.urandom(12)
        return self._current, nonce + self._keys[self._current].encrypt(nonce, data_key, _WRAP_AAD)

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        """Unwrap a data key wrapped by key `key_id`.

        Raises:
            KeyConfigurationError: the key is not configured, or the wrapped key does not open with it.
        """
        aead = self._keys.get(key_id)
        if aead is None:
            raise KeyConfigurationError(f"wrapping key {key_id} is not configured")
        try:
            return aead.decrypt(wrapped[:12], wrapped[12:], _WRAP_AAD)
        except Exception as e:
            raise KeyConfigurationError(f"a data key does not open with wrapping key {key_id}") from e

    def knows(self, key_id: str) -> bool:
        """Whether key `key_id` is configured."""
        return key_id in self._keys


def load_key_provider(key: str | None, key_file: Path | None, old_keys: str | None) -> LocalKeyProvider | None:
    """The local key provider of the settings, or None when encryption is off (neither key nor key file given).

    Args:
        key: base64 of the 32-byte wrapping key (`SESSION_BACKEND_ENCRYPTION_KEY`).
        key_file: a file holding that base64 text (`SESSION_BACKEND_ENCRYPTION_KEY_FILE`).
        old_keys: comma-separated base64 keys still accepted for unwrapping (`SESSION_BACKEND_ENCRYPTION_OLD_KEYS`).

    Raises:
        KeyConfigurationError: both or a malformed key given, or the key file unreadable.
    """
    if key is not None and key_file is not None:
        raise KeyConfigurationError(
            "set SESSION_BACKEND_ENCRYPTION_KEY or SESSION_BACKEND_ENCRYPTION_KEY_FILE, not both"
        )
    if key_file is not None:
        try:
            key = key_file.read_text()
        except OSError as e:
            raise KeyConfigurationError(f"cannot read SESSION_BACKEND_ENCRYPTION_KEY_FILE {key_file}: {e}") from e
    old = [decode_key(k, "SESSION_BACKEND_ENCRYPTION_OLD_KEYS") for k in (old_keys or "").split(",") if k.strip()]
    if key is None:
        if old:
            raise KeyConfigurationError("SESSION_BACKEND_ENCRYPTION_OLD_KEYS needs SESSION_BACKEND_ENCRYPTION_KEY")
        return None
    return LocalKeyProvider(decode_key(key, "the encryption key"), old)


def key_provider(settings: Any) -> LocalKeyProvider | None:
    """The wrapping key's provider of the backend's `Settings` (key or key file, old keys), or None: encryption off.

    Raises:
        KeyConfigurationError: a malformed key, both key and key file, or an unreadable key file.
    """
    return load_key_provider(
        settings.encryption_key.get_secret_value() if settings.encryption_key else None,
        settings.encryption_key_file,
        settings.encryption_old_keys.get_secret_value() if settings.encryption_old_keys else None,
    )


async def rotate(conn: asyncpg.Pool | Any, provider: KeyProvider, batch_size: int = 500) -> int:
    """Re-wrap every data key not wrapped by the provider's current key (data is not re-encrypted).

    Each batch commits on its own: an interrupted rotation is finished by running it again.

    Returns:
        How many data keys were re-wrapped.

    Raises:
        KeyConfigurationError: a data key whose wrapping key the provider does not know.
    """
    done = 0
    while rows := await conn.fetch(sql.SELECT_TO_REWRAP, provider.current_key_id, batch_size):
        rewrapped = [provider.wrap(provider.unwrap(r["wrapping_key_id"], bytes(r["wrapped"]))) for r in rows]
        await conn.execute(
            sql.REWRAP_DATA_KEYS,
            [r["key_id"] for r in rows],
            [w[0] for w in rewrapped],
            [w[1] for w in rewrapped],
        )
        done += len(rows)
    return done
