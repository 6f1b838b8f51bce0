"""The ASGI application served by ``syncd run`` (and alone by ``syncd web``).

Routes: the provider webhooks (``/hooks/...``), the agenda pages (``/m/...``,
``/p/...``), the JSON API (``/api/v1/...``), the stylesheet and the small
script (``/static``), and the probes and metrics (``/healthz``, ``/readyz``,
``/metrics``).
Every response carries the security headers; agenda tokens are redacted
from uvicorn's access log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from syncd import metrics
from syncd.health import Heartbeat, WriteHealth
from syncd.web import api, authenticators, health, hooks, limits, pages, security
from syncd.web.identity import Authenticator, SignInRequired, sign_in_location
from syncd.web.service import Agendas
from syncd.web.settings import WebSettings

STATIC = Path(__file__).parent / "static"


def create_app(
    factory: sessionmaker[Session],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    web: WebSettings | None = None,
    *,
    heartbeat: Heartbeat | None = None,
    registry: CollectorRegistry | None = None,
    authenticator: Authenticator | None = None,
    on_mark: Callable[[float], None] | None = None,
) -> Starlette:
    """``heartbeat``: the scheduler's, when this process runs one (``/readyz`` checks it).
    ``registry``: the process's metrics; by default a new one, where only the calendar
    gauges (read from the database) have values: a web-only process syncs nothing.
    ``authenticator``: instead of the one ``web`` names (tests hand msal's transport to it).
    ``on_mark(seconds)``: told when a webhook or an edit marked a calendar due that many
    seconds from now (``syncd run`` wakes its scheduler then).
    """
    settings = web or WebSettings()
    authenticator = authenticator or authenticators.for_settings(settings)
    writes = WriteHealth()
    agendas = Agendas(factory, clock, settings, writes, on_mark=on_mark)
    page_routes = pages.Pages(agendas, authenticator, settings)
    api_app = api.create(agendas, authenticator, settings)
    if registry is None:
        registry = metrics.Metrics(factory).registry
    routes: list[BaseRoute] = [
        *health.routes(factory, registry, heartbeat, writes),
        *hooks.routes(factory, clock, on_mark),
        *page_routes.routes(),
        Mount(api.PREFIX, app=api_app),
        *authenticator.routes(),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith(api.PREFIX + "/"):
            return api.error(404, api.NOT_FOUND)
        return page_routes.not_found(request)

    async def sign_in_required(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith(api.PREFIX + "/"):
            return api.error(401, "sign in first")
        return RedirectResponse(sign_in_location(request), status_code=303)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if request.url.path.startswith(api.PREFIX + "/"):
            return api.error(exc.status_code, exc.detail)
        return Response(exc.detail, status_code=exc.status_code, media_type="text/plain")

    def too_large(path: str) -> Response:
        message = "request body too large"
        if path.startswith(api.PREFIX + "/"):
            return api.error(413, message)
        return PlainTextResponse(message, status_code=413)

    security.redact_logs("uvicorn.access", "uvicorn.error", "syncd")
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(security.SecurityHeaders),
            Middleware(
                limits.BoundedBodies,
                answer=too_large,
                limit_for=hooks.body_limit,
            ),
        ],
        exception_handlers={
            404: not_found,
            HTTPException: http_error,
            SignInRequired: sign_in_required,
        },
    )
