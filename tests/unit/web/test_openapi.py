"""The OpenAPI document is generated from the API's own models and lists exactly its routes."""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute
from starlette.routing import Mount

from syncd.web import api
from tests.unit.web.conftest import Browser, Org
from tests.unit.world import ANA


def document(org: Org) -> dict[str, Any]:
    found: dict[str, Any] = Browser(org.app(), ANA).get("/api/v1/openapi.json").json()
    return found


def test_the_openapi_document_lists_exactly_the_api_routes(org: Org) -> None:
    app = org.app()
    doc = Browser(app, ANA).get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] == [{"url": "/api/v1"}]
    documented = {
        (doc["servers"][0]["url"] + path, method.upper())
        for path, operations in doc["paths"].items()
        for method in operations
    }
    (mounted,) = [r for r in app.routes if isinstance(r, Mount) and r.path == api.PREFIX]
    served = {
        (api.PREFIX + re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), method)
        for route in mounted.app.routes  # type: ignore[union-attr]
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    assert documented == served and len(served) >= 12


def test_every_reference_in_the_document_resolves(org: Org) -> None:
    doc = document(org)
    for kind, name in re.findall(r"#/components/(\w+)/(\w+)", str(doc)):
        assert name in doc["components"][kind], name


def test_the_schemas_are_the_models_the_api_answers_and_accepts_with(org: Org) -> None:
    """Declared once: a field added to a model is in the document, with its rules."""
    schemas = document(org)["components"]["schemas"]
    assert set(schemas["TalkingPoint"]["properties"]) == set(api.TalkingPoint.model_fields)
    assert set(schemas["Meeting"]["properties"]) == set(api.Meeting.model_fields)
    change = schemas["ActionItemChange"]
    assert change["additionalProperties"] is False  # a typo is refused, and documented so
    assert set(change["properties"]) == {"text", "owner", "due", "done"}
    assert schemas["NewTalkingPoint"]["properties"]["text"]["maxLength"] == 200_000
    move = schemas["Move"]["properties"]
    assert move["position"]["anyOf"][0]["maximum"] == 9999


def test_errors_are_documented_as_one_line_objects(org: Org) -> None:
    doc = document(org)
    add = doc["paths"]["/meetings/{token}/talking-points"]["post"]
    for status in ("400", "403", "404", "415", "503"):
        ref = add["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/Error"), status
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]


def test_the_document_promises_no_answer_the_api_never_gives(org: Org) -> None:
    doc = document(org)
    statuses = {s for ops in doc["paths"].values() for op in ops.values() for s in op["responses"]}
    assert "422" not in statuses  # a bad request is a 400 with {"error": ...}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
