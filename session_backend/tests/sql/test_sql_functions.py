"""session_backend.sql: the SQL functions are built from the shared pieces, and versioned by their definition."""

from __future__ import annotations

from pathlib import Path

import session_backend.sql
from session_backend.sql.common import AGENT_JSON, LIVE, iso, message_json
from session_backend.sql.functions import FUNCTIONS, SESSION_BACKEND_WRITE, SqlFunction

SQL_DIR = Path(session_backend.sql.__file__).parent


def test_timestamp_format_is_written_once() -> None:
    fmt = iso("x").split(", ", 1)[1]
    holders = [p.name for p in SQL_DIR.glob("*.py") if fmt in p.read_text()]
    assert holders == ["common.py"]


def test_write_function_uses_the_shared_shapes() -> None:
    definition = SESSION_BACKEND_WRITE.definition
    assert definition.lstrip().startswith("CREATE OR REPLACE FUNCTION session_backend_write(")
    assert f"WHERE s.session_id = p_session_id AND {LIVE}" in definition  # the liveness rule, shared
    assert AGENT_JSON in definition
    assert message_json("v_message", "v_message_id", "v_redact", "v_created", "v_updated") in definition
    for code in ("SB404", "SB409", "SB412", "SB423"):
        assert f"ERRCODE = '{code}'" in definition


def test_version_follows_the_definition() -> None:
    same = SqlFunction(SESSION_BACKEND_WRITE.name, SESSION_BACKEND_WRITE.definition)
    changed = SqlFunction(SESSION_BACKEND_WRITE.name, SESSION_BACKEND_WRITE.definition + " ")
    assert same.sha256 == SESSION_BACKEND_WRITE.sha256 != changed.sha256
    assert len({f.name for f in FUNCTIONS}) == len(FUNCTIONS)
