"""The identifier rule of sessions, agents, multi-agents and actors, stated once for both services."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

IDENTIFIER_PATTERN = r"^[A-Za-z0-9._:@+=\-]{1,256}$"
"""1 to 256 characters from `A-Z a-z 0-9 . _ : @ + = -` (also usable in `Query(pattern=...)`)."""


def not_dot(value: str) -> str:
    """Return `value` unless it is `.` or `..` (path segments with a meaning of their own).

    Raises:
        ValueError: it is.
    """
    if value in (".", ".."):
        raise ValueError("identifier must not be '.' or '..'")
    return value


Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN, max_length=256), AfterValidator(not_dot)]
"""1 to 256 characters from `A-Z a-z 0-9 . _ : @ + = -`, not `.` or `..` (DESIGN.md, Backend REST API)."""
