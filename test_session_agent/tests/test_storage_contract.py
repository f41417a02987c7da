"""Strands' own storage and snapshot session manager suites, run on `PostgreSQLStorage` against a real backend.

The suites come from the strands-agents sdist of the installed version (see `strands_sdist.py`) and run in a
pytest subprocess with `_strands_contract_plugin` loaded, which swaps the storage under test for ours: Strands'
repository tests run against our repository, unchanged. A test that cannot apply is listed with its reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from strands_sdist import check, run_suite

from session_backend.testing import ENCRYPTION_MODES

# Strands' suites hold with encryption at rest off and on (each mode on its own backend and database).
pytestmark = pytest.mark.parametrize(**ENCRYPTION_MODES)


STORAGE_SUITE = [
    "tests/strands/storage/test_in_memory_storage.py",
    "tests/strands/storage/test_storage.py",
    "tests/strands/storage/search/test_keyword.py",
]
SNAPSHOT_SUITE = ["tests/strands/session/test_snapshot_session_manager.py"]

# test id (as junit names it: class path + name) -> why it cannot apply to a PostgreSQL-backed storage.
NOT_APPLICABLE = {
    "tests.strands.storage.test_in_memory_storage.TestInMemoryStorage.test_clear": (
        "calls InMemoryStorage.clear() synchronously; ours is a coroutine (a sync clear would block the event loop "
        "on HTTP) and clear() is not part of the Storage protocol"
    ),
    "tests.strands.storage.test_in_memory_storage.TestInMemoryStorage.test_namespace_clear_only_clears_prefix": (
        "same synchronous InMemoryStorage.clear()"
    ),
    "tests.strands.storage.search.test_keyword.TestKeywordSearch.test_skips_keys_where_read_returns_none": (
        "pokes a key into InMemoryStorage's private `_store` dict to fake a listed-but-unreadable key"
    ),
    "tests.strands.session.test_snapshot_session_manager.TestSnapshotStashIntegration"
    ".test_save_writes_external_ref_for_durable_storage": (
        "asserts the snapshot records the stash storage's class name 'LocalFileStorage'; ours records its own"
    ),
}


@pytest.mark.integration
def test_strands_storage_suite_on_postgresql_storage(backend_url: str, tmp_path: Path) -> None:
    outcomes = run_suite(STORAGE_SUITE, "in_memory", backend_url, tmp_path / "storage.xml")
    check(outcomes, NOT_APPLICABLE)
    assert len(outcomes) >= 79


@pytest.mark.integration
def test_strands_snapshot_session_manager_suite_on_postgresql_storage(backend_url: str, tmp_path: Path) -> None:
    outcomes = run_suite(SNAPSHOT_SUITE, "local_file", backend_url, tmp_path / "snapshot.xml")
    check(outcomes, NOT_APPLICABLE)
    assert len(outcomes) >= 117
