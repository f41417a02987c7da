"""Identifiers of sessions, agents and actors: the backend's rule, checked in the service before any request."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

IDENTIFIER_PATTERN = r"^[A-Za-z0-9._:@+=\-]{1,256}$"


def _not_dot(value: str) -> str:
    if value in (".", ".."):
        raise ValueError("identifier must not be '.' or '..'")
    return value


Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN), AfterValidator(_not_dot)]
"""1 to 256 characters from `A-Z a-z 0-9 . _ : @ + = -`, not `.` or `..`: the backend's identifier rule, checked
here so a bad id is the caller's 422, not a backend refusal."""
