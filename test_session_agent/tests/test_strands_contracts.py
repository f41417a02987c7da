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

from session_backend.testing import ENCRYPTION_MODES
from test_session_agent import PostgreSQLSessionRepository

# Strands' suites hold with encryption at rest off and on (each mode on its own backend and database).
pytestmark = pytest.mark.parametrize(**ENCRYPTION_MODES)

REPOSITORY_SUITE = [
    "tests/strands/session/test_repository_session_manager.py",
    # Agent-level tests elsewhere that build a MockedSessionRepository (sessions restored into agents, delegation).
    *(
        f"tests/strands/agent/test_agent.py::{name}"
        for name in (
            "test_session_id_delegates_to_session_manager",
            "test_metadata_carries_session_id_with_manager",
            "test_metadata_shared_across_agents_on_same_session",
            "test_agent_metadata_reaches_model_stream_with_session_manager",
            "test_shared_model_carries_each_agents_own_session",
            "test_agent_session_management",
            "test_agent_restored_from_session_management",
            "test_agent_restored_from_session_management_with_message",
            "test_agent_restored_from_session_management_with_redacted_input",
            "test_agent_restored_from_session_management_with_correct_index",
            "test_agent_with_session_and_conversation_manager",
        )
    ),
    "tests/strands/agent/test_agent_delegation.py::test_delegation_emits_correct_history_and_single_assistant_event",
    "tests/strands/agent/test_agent_delegation.py::test_persisted_matches_in_memory_after_delegation",
    "tests/strands/models/routing/test_router.py::test_routing_forwards_agent_metadata_to_the_selected_alternate",
]
MEMORY_STORE_SUITE = ["tests/strands/vended_memory_stores/test_memory_store/test_store.py"]

# test id (junit class path + name) -> why it cannot apply to our repository. None: the suite never pokes the
# mock's private dicts, so every test runs on PostgreSQL.
REPOSITORY_NOT_APPLICABLE: dict[str, str] = {}

_STORE = "tests.strands.vended_memory_stores.test_memory_store.test_store."
_FILE = "reads or writes the reference store's JSON backing file at `path`; ours keeps memories in PostgreSQL"

# test id -> why it cannot apply to our memory store. What such a test checks beyond the file is checked of ours in
# test_memory_store.py (named in the reason).
MEMORY_STORE_NOT_APPLICABLE = {
    _STORE + "TestConstructor.test_raises_when_explicit_path_is_empty": (
        "`path` is the reference store's file; ours has none (the stand-in only names the actor after it)"
    ),
    _STORE + "TestConstructor.test_defaults_to_a_sanitized_path_under_the_home_memory_dir": (
        "checks the default file ~/.strands/memory/<name>.json; ours writes no file"
    ),
    _STORE + "TestAdd.test_uses_the_monkeypatchable_id_generator": (
        "patches the reference module's `_new_id`; our memory ids are minted by PostgreSQL"
    ),
    _STORE + "TestAdd.test_persists_human_readable_json": _FILE,
    _STORE + "TestSearch.test_ranks_higher_overlap_first_with_relevance_score": (
        "the order assertion passes; then it reads `_relevanceScore`, the reference's token-overlap count (3, 1): "
        "ours ranks by PostgreSQL full text (each word weighted by its rarity) and reports it as `score` in (0, 1] "
        "(test_ranks_higher_overlap_first_and_excludes_no_overlap)"
    ),
    _STORE + "TestPersistence.test_raises_clear_error_on_corrupt_file": _FILE,
    _STORE + "TestPersistence.test_raises_clear_error_on_wrong_shape_file": _FILE,
    _STORE + "TestPersistence.test_raises_clear_error_on_malformed_record": _FILE,
    _STORE + "TestPersistence.test_raises_clear_error_on_non_object_metadata": _FILE,
    _STORE + "TestPersistence.test_accepts_null_metadata_as_absent": _FILE + " (seeds a record there)",
    _STORE + "TestPersistence.test_keeps_all_entries_under_concurrent_writes": (
        _FILE + " (to count the entries; test_concurrent_adds_all_kept_across_event_loops)"
    ),
    _STORE + "TestPersistence.test_reused_across_separate_event_loops": (
        "wraps the reference store's private `_storage`; ours has none "
        "(test_concurrent_adds_all_kept_across_event_loops)"
    ),
    _STORE + "TestPersistence.test_raises_clear_error_when_path_is_unreachable": (
        "expects the file write to fail under an unreachable path; ours writes no file "
        "(test_unreachable_backend_is_unavailable)"
    ),
    _STORE + "TestCrossSdkInterop.test_loads_a_file_written_in_the_shared_camelcase_format": (
        "loads a file in the reference stores' on-disk format shared with the TypeScript SDK; ours has no file"
    ),
    _STORE + "TestMemoryManagerIntegration.test_manager_add_writes_to_store": (
        _FILE + " (to see the write; test_memory_manager_search_and_add)"
    ),
    _STORE + "TestMemoryManagerIntegration.test_ingests_extracted_facts_through_add": (
        _FILE + " (to see the fact; test_facts_are_extracted_after_the_turn_and_recalled_in_a_later_session)"
    ),
}


@pytest.mark.integration
def test_strands_repository_session_manager_suite_on_postgresql_repository(backend_url: str, tmp_path: Path) -> None:
    outcomes = run_suite(REPOSITORY_SUITE, "repository", backend_url, tmp_path / "repository.xml")
    check(outcomes, REPOSITORY_NOT_APPLICABLE)
    assert len(outcomes) >= 65
    # Nothing is listed not applicable, so a swap that silently missed would pass on the mock: the sessions of the
    # suite's last test (the plugin empties the backend before each test) show the suite wrote to PostgreSQL.
    repository = PostgreSQLSessionRepository(backend_url)
    try:
        assert repository.list_sessions()["items"], "the suite never wrote to the backend: was the mock swapped?"
    finally:
        repository.close()


@pytest.mark.integration
def test_strands_memory_store_suite_on_postgresql_memory_store(backend_url: str, tmp_path: Path) -> None:
    outcomes = run_suite(MEMORY_STORE_SUITE, "memory_store", backend_url, tmp_path / "memory_store.xml")
    check(outcomes, MEMORY_STORE_NOT_APPLICABLE)
    assert len(outcomes) >= 42
