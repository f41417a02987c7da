"""Strands' own repository session manager and memory store suites, run on our repository and memory store.

The suites come from the strands-agents sdist of the installed version and run with `_strands_contract_plugin`
(see `strands_sdist.run_suite`): `RepositorySessionManager` runs on `PostgreSQLSessionRepository` in place of the
fixture `MockedSessionRepository`, and `TestMemoryStore`'s tests run on `PostgreSQLMemoryStore`, against a real
backend. A test that cannot apply is listed with its reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from strands_sdist import check, run_suite

REPOSITORY_SUITE = ["tests/strands/session/test_repository_session_manager.py"]
MEMORY_STORE_SUITE = ["tests/strands/vended_memory_stores/test_memory_store/test_store.py"]

# test id (junit class path + name) -> why it cannot apply to our repository.
REPOSITORY_NOT_APPLICABLE: dict[str, str] = {}

# test id -> why it cannot apply to our memory store.
MEMORY_STORE_NOT_APPLICABLE: dict[str, str] = {}


@pytest.mark.integration
def test_strands_repository_session_manager_suite_on_postgresql_repository(backend_url: str, tmp_path: Path) -> None:
    outcomes = run_suite(REPOSITORY_SUITE, "repository", backend_url, tmp_path / "repository.xml")
    check(outcomes, REPOSITORY_NOT_APPLICABLE)


@pytest.mark.integration
def test_strands_memory_store_suite_on_postgresql_memory_store(backend_url: str, tmp_path: Path) -> None:
    outcomes = run_suite(MEMORY_STORE_SUITE, "memory_store", backend_url, tmp_path / "memory_store.xml")
    check(outcomes, MEMORY_STORE_NOT_APPLICABLE)
