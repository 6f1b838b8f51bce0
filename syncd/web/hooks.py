"""Provider webhooks: judge the notification, mark the calendar due, answer at once.

A webhook never syncs: it records that a calendar changed and returns, so a
burst of notifications costs one short transaction each, and a slow
provider or database never makes the provider's delivery time out. Unknown,
stale and forged notifications all get the same answer, so the response
says nothing about which channels exist.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from providers import google
from syncd import push
from syncd.store import transaction


def routes(
    factory: sessionmaker[Session], clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> list[Route]:
    def judge_google(headers: dict[str, str]) -> push.Outcome:
        with transaction(factory) as session:
            return push.accept(session, google.parse_notification(headers), clock())

    async def google_hook(request: Request) -> Response:
        outcome = await run_in_threadpool(judge_google, dict(request.headers))
        # 404 for anything not ours: Google does not retry it, and it reveals nothing.
        return Response(status_code=404 if outcome is push.Outcome.UNKNOWN else 204)

    return [Route("/hooks/google", google_hook, methods=["POST"])]
