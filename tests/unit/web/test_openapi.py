"""The OpenAPI document describes exactly the API that exists."""

from __future__ import annotations

import re

from starlette.routing import Route

from tests.unit.web.conftest import Browser, Org
from tests.unit.world import ANA


def test_the_openapi_document_lists_exactly_the_api_routes(org: Org) -> None:
    app = org.app()
    document = Browser(app, ANA).get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    documented = {
        (path, method.upper())
        for path, operations in document["paths"].items()
        for method in operations
    }
    served = {
        (re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), method)
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith("/api/")
        for method in (route.methods or ())
        if method != "HEAD"
    }
    assert documented == served


def test_every_reference_in_the_document_resolves(org: Org) -> None:
    document = Browser(org.app(), ANA).get("/api/v1/openapi.json").json()
    text = str(document)
    for kind, name in re.findall(r"#/components/(\w+)/(\w+)", text):
        assert name in document["components"][kind], name
