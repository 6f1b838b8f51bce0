"""Hypothesis, through schemathesis, against the generated OpenAPI document.

Every operation the document lists is called with requests generated from
its own schemas (as Ana, on a real meeting, with a valid CSRF token, so the
calls get past the door), and every answer must match the document (status
code, content type, body schema) and never be a 500.

A schema-valid request may still be refused with a documented 400: an
action item's owner must be one of the pair's two people, a change must
change something, a move gives offset or position. A schema cannot say
that, so schemathesis' "valid data is accepted" check is left out; every
other check runs.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from tests.unit.web.conftest import Browser, Org
from tests.unit.world import ANA

#: Generated requests per operation.
EXAMPLES = 30


def test_no_answer_breaks_the_document_and_none_is_a_server_error(org: Org) -> None:
    meeting, _ = org.tokens(0)
    app = org.app()
    api = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    answer = Browser(app, ANA).get(f"/api/v1/meetings/{meeting}")
    token = answer.headers["X-CSRF-Token"]
    headers = {"X-Forwarded-Email": ANA, "X-CSRF-Token": token}
    cookies = {"__Host-syncd-csrf": token}
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 12, "the document lists every operation"

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
        )
        def call(case: Any) -> None:
            if "token" in (case.path_parameters or {}):
                case.path_parameters["token"] = meeting  # a real agenda, so edits happen
            case.call_and_validate(
                headers=headers, cookies=cookies, excluded_checks=[positive_data_acceptance]
            )

        call()
