"""Pytest plugin run inside Strands' own test suites (from the strands-agents sdist): their storage becomes ours.

`STRANDS_CONTRACT_SWAP=in_memory` makes `InMemoryStorage` a `PostgreSQLStorage` (storage suites);
`STRANDS_CONTRACT_SWAP=local_file` makes `LocalFileStorage` one (snapshot session manager suite). Each stand-in
gets its own key prefix: a fresh one per `InMemoryStorage()`, one per directory for `LocalFileStorage(dir)`, so
two storages on one directory share data as two processes on one directory would. The backend is
`STRANDS_CONTRACT_BACKEND_URL`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import types
import uuid
from typing import Any

# Strands' root conftest imports moto for its S3 fixtures, which these suites never use.
if importlib.util.find_spec("moto") is None:
    sys.modules["moto"] = types.ModuleType("moto")

import strands.session.snapshot_session_manager as snapshot_module
import strands.storage as storage_package
import strands.storage.in_memory_storage as in_memory_module
import strands.storage.local_file_storage as local_file_module

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


swap = os.environ.get("STRANDS_CONTRACT_SWAP", "in_memory")
if swap == "in_memory":
    storage_package.InMemoryStorage = InMemoryStandIn  # type: ignore[misc,assignment]
    in_memory_module.InMemoryStorage = InMemoryStandIn  # type: ignore[misc,assignment]
elif swap == "local_file":
    storage_package.LocalFileStorage = LocalFileStandIn  # type: ignore[misc,assignment]
    local_file_module.LocalFileStorage = LocalFileStandIn  # type: ignore[misc,assignment]
    snapshot_module.LocalFileStorage = LocalFileStandIn  # type: ignore[attr-defined,assignment]
else:
    raise RuntimeError(f"unknown STRANDS_CONTRACT_SWAP={swap!r}")
