"""Pytest plugin run inside Strands' own test suites (from the strands-agents sdist): their storage becomes ours.

`STRANDS_CONTRACT_SWAP=in_memory` makes `InMemoryStorage` a `PostgreSQLStorage` (storage suites);
`STRANDS_CONTRACT_SWAP=local_file` makes `LocalFileStorage` one (snapshot session manager suite). Each stand-in
gets its own key prefix: a fresh one per `InMemoryStorage()`, one per directory for `LocalFileStorage(dir)`, so
two storages on one directory share data as two processes on one directory would.
`STRANDS_CONTRACT_SWAP=repository` makes the fixture `MockedSessionRepository` a `PostgreSQLSessionRepository`
(repository session manager suite) and empties the backend of sessions before each test;
`STRANDS_CONTRACT_SWAP=memory_store` makes `TestMemoryStore` a `PostgreSQLMemoryStore` (memory store suite).
The backend is `STRANDS_CONTRACT_BACKEND_URL`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

# Strands' root conftest imports moto for its S3 fixtures, which these suites never use.
if importlib.util.find_spec("moto") is None:
    sys.modules["moto"] = types.ModuleType("moto")

import strands.session.snapshot_session_manager as snapshot_module
import strands.storage as storage_package
import strands.storage.in_memory_storage as in_memory_module
import strands.storage.local_file_storage as local_file_module

from test_session_agent.memory import PostgreSQLMemoryStore
from test_session_agent.postgresql_session_repository import PostgreSQLSessionRepository
from test_session_agent.storage import PostgreSQLStorage

BACKEND_URL = os.environ["STRANDS_CONTRACT_BACKEND_URL"]
RUN = uuid.uuid4().hex[:8]


class InMemoryStandIn(PostgreSQLStorage):
    """`InMemoryStorage()` as Strands' tests build it, on PostgreSQL under a fresh prefix."""

    def __init__(self, *, search_strategy: Any = None) -> None:
        super().__init__(BACKEND_URL, prefix=f"contract-{RUN}/{uuid.uuid4().hex}", search_strategy=search_strategy)


class LocalFileStandIn(PostgreSQLStorage):
    """`LocalFileStorage(base_dir)` as Strands' tests build it, on PostgreSQL under a prefix per directory."""

    def __init__(self, base_dir: str = "./.strands/", *, sandbox: Any = None, search_strategy: Any = None) -> None:
        self.base_dir = os.path.abspath(base_dir)
        digest = hashlib.sha256(self.base_dir.encode()).hexdigest()[:24]
        super().__init__(BACKEND_URL, prefix=f"contract-{RUN}/{digest}", search_strategy=search_strategy)


class SessionRepositoryStandIn(PostgreSQLSessionRepository):
    """`MockedSessionRepository()` as Strands' tests build it: our repository on the backend."""

    def __init__(self) -> None:
        super().__init__(BACKEND_URL)


def _empty_backend() -> Iterator[None]:
    """Delete every session of the backend before each test (a scratch database serving only this suite).

    A fresh mock starts empty and the tests reuse session ids ("test-session", "s1"...), so each test starts on an
    empty backend, whatever ids a later Strands version picks; per test rather than per repository, since a test
    may build two repositories (two agents on "s1" and "s2") and expect both sessions to stay.
    """
    repository = PostgreSQLSessionRepository(BACKEND_URL)
    try:
        while items := repository.list_sessions(limit=100)["items"]:
            for item in items:
                repository.delete_session(item["session_id"])
        yield
    finally:
        repository.close()


class TestMemoryStoreStandIn(PostgreSQLMemoryStore):
    """`TestMemoryStore(**config)` as Strands' tests build it: our store, one actor per backing file.

    A persistent store's `path` names the actor (two stores on one file share memories, as after a restart);
    `persist=False` or no `path` gives a fresh actor, so each test is isolated. `add` answers the reference store's
    `TestMemoryAddResult` (the `MemoryStore` protocol leaves `add`'s result open); ours answers the memory_id.
    """

    __test__ = False

    def __init__(self, **config: Any) -> None:
        path = config.get("path") if config.get("persist", True) else None
        owner = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:24] if path else uuid.uuid4().hex
        super().__init__(
            f"contract-{RUN}-{owner}",
            BACKEND_URL,
            name=config["name"],
            description=config.get("description"),
            max_search_results=config.get("max_search_results"),
            writable=config.get("writable", True),
            extraction=config.get("extraction"),
        )

    async def add(
        self, content: str, metadata: dict[str, Any] | None = None, *, source: dict[str, Any] | None = None
    ) -> Any:
        from strands.vended_memory_stores.test_memory_store import TestMemoryAddResult

        return TestMemoryAddResult(id=await super().add(content, metadata, source=source))


swap = os.environ.get("STRANDS_CONTRACT_SWAP", "in_memory")
if swap == "in_memory":
    storage_package.InMemoryStorage = InMemoryStandIn  # type: ignore[misc,assignment]
    in_memory_module.InMemoryStorage = InMemoryStandIn  # type: ignore[misc,assignment]
elif swap == "local_file":
    storage_package.LocalFileStorage = LocalFileStandIn  # type: ignore[misc,assignment]
    local_file_module.LocalFileStorage = LocalFileStandIn  # type: ignore[misc,assignment]
    snapshot_module.LocalFileStorage = LocalFileStandIn  # type: ignore[attr-defined,assignment]
elif swap == "repository":
    import tests.fixtures.mock_session_repository as mock_repository_module

    mock_repository_module.MockedSessionRepository = SessionRepositoryStandIn
    empty_backend = pytest.fixture(autouse=True)(_empty_backend)
elif swap == "memory_store":
    import strands.vended_memory_stores as memory_stores_package
    import strands.vended_memory_stores.test_memory_store as test_memory_store_package

    memory_stores_package.TestMemoryStore = TestMemoryStoreStandIn  # type: ignore[misc,assignment]
    test_memory_store_package.TestMemoryStore = TestMemoryStoreStandIn  # type: ignore[misc,assignment]
else:
    raise RuntimeError(f"unknown STRANDS_CONTRACT_SWAP={swap!r}")
