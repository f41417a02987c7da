"""Fixtures of the session backend tests: an app on a fresh database, driven in-process through its lifespan."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from session_backend.app import create_app
from session_backend.settings import Settings

SettingsFactory = Callable[..., Settings]


@pytest.fixture(scope="module")
def make_settings(database_url: str, encryption_key: str) -> SettingsFactory:
    """Returns `f(**overrides) -> Settings` for a test app on this module's database (no auth by default; encryption
    at rest with the module's `encryption_key`, when it runs in `ENCRYPTION_MODES`)."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {"database_url": database_url, "api_key": None, "sweep_interval_seconds": 3600}
        values["encryption_key"] = encryption_key or None
        values.update(overrides)
        return Settings.model_validate(values)

    return make


@pytest.fixture(scope="module")
def client(make_settings: SettingsFactory) -> Iterator[TestClient]:
    """A client of the backend app (lifespan run: pool open, schema migrated), body limit 64 KiB."""
    with TestClient(create_app(make_settings(max_body_bytes=64 * 1024))) as c:
        yield c
