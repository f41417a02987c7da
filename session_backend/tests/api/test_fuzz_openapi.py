"""Schemathesis against the backend's own OpenAPI schema (a real process on real PostgreSQL): whatever it sends,
no 5xx, and every response matches the documented status codes, content types and schemas."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.integration

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 30


@pytest.mark.slow  # ~20 s of fuzzing: `make test` runs it, `pytest -m "not slow"` skips it
def test_no_server_errors_and_responses_match_schema(backend_url: str) -> None:
    # Driven by hand rather than by schemathesis' pytest plugin, which does not run under pytest 9.
    schema = schemathesis.openapi.from_url(f"{backend_url}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert len(operations) >= 15
    statuses: list[int] = []
    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case[Any]) -> None:
            response = case.call_and_validate(checks=CHECKS, timeout=30)
            statuses.append(response.status_code)

        check()
    # the fuzzing reached the routes, not only their validation
    assert len(statuses) >= 10 * len(operations)
    assert {200, 201, 204, 404, 422} <= set(statuses), sorted(set(statuses))
