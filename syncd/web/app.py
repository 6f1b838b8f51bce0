"""The ASGI application served by ``syncd run`` (and alone by ``syncd web``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from syncd.web import hooks


def create_app(
    factory: sessionmaker[Session], clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Starlette:
    return Starlette(routes=hooks.routes(factory, clock))
