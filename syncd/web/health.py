"""Probes and metrics: ``/healthz``, ``/readyz`` and ``/metrics``.

``/healthz`` answers while the process serves at all: a failing one means
restart it. ``/readyz`` answers 200 only when the process can do its job:
the database answers (and takes writes, once an edit was refused), and
(where this process runs the scheduler) the
scheduler's heartbeat is fresh; a load balancer stops sending traffic and an
operator sees why in the short JSON reason. ``/metrics`` is the Prometheus
text exposition of the process's registry.

None of them needs sign-in or CSRF (they change nothing), and none says more
than counts: no addresses, no tokens, no error text (a database error can
carry its connection string).
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from syncd import metrics
from syncd.health import Heartbeat, WriteHealth
from syncd.store import writable

log = logging.getLogger(__name__)

NO_STORE = {"cache-control": "no-store"}


def database_answers(factory: sessionmaker[Session]) -> bool:
    try:
        with factory() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        log.warning("not ready: the database did not answer (%s)", type(error).__name__)
        return False
    return True


def unready_reason(
    factory: sessionmaker[Session],
    heartbeat: Heartbeat | None,
    writes: WriteHealth | None = None,
) -> str | None:
    """Why this process should get no traffic now; None when it is ready."""
    if not database_answers(factory):
        return "database unreachable"
    if writes is not None and writes.failing:
        # Probed only after an edit was refused, so a healthy process never pays for it.
        if not writable(_engine(factory)):
            return "database refuses writes"
        writes.accepted()
    if heartbeat is None:
        return None
    age = heartbeat.age()
    if age is None:
        return "scheduler has not ticked yet"
    if not heartbeat.fresh():
        return f"scheduler stalled: last tick {age:.0f}s ago (limit {heartbeat.max_age:.0f}s)"
    return None


def _engine(factory: sessionmaker[Session]) -> Engine:
    bind = factory.kw["bind"]
    assert isinstance(bind, Engine), "syncd's sessions are bound to one engine"
    return bind


def routes(
    factory: sessionmaker[Session],
    registry: CollectorRegistry,
    heartbeat: Heartbeat | None = None,
    writes: WriteHealth | None = None,
) -> list[BaseRoute]:
    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok", headers=NO_STORE)

    async def readyz(request: Request) -> Response:
        reason = await run_in_threadpool(unready_reason, factory, heartbeat, writes)
        if reason is not None:
            body = {"status": "unready", "reason": reason}
            return JSONResponse(body, status_code=503, headers=NO_STORE)
        return JSONResponse({"status": "ready"}, headers=NO_STORE)

    async def exposition(request: Request) -> Response:
        # Collecting may query the database (the calendar gauges): not on the event loop.
        body = await run_in_threadpool(metrics.exposition, registry)
        return Response(body, media_type=metrics.CONTENT_TYPE, headers=NO_STORE)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", exposition, methods=["GET"]),
    ]
