"""Provider webhooks: judge the notification, mark the calendar due, answer at once.

A webhook never syncs: it records that a calendar changed and returns, so a
burst of notifications costs one short transaction each, and a slow
provider or database never makes the provider's delivery time out. Unknown,
stale and forged notifications all get the same answer, so the response
says nothing about which channels exist. Graph's notifications are judged
after the 202 has gone out: Graph drops subscriptions whose endpoint is slow,
and a lost mark only costs latency (polling catches up).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from providers import google, microsoft
from providers.base import Notification
from syncd import push
from syncd.store import transaction


def routes(
    factory: sessionmaker[Session],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_mark: Callable[[float], None] | None = None,
) -> list[Route]:
    def wake(dues: list[datetime | None], now: datetime) -> None:
        """After the commit (the marks are there when the worker looks): at the earliest."""
        marked = [due for due in dues if due is not None]
        if on_mark is not None and marked:
            on_mark((min(marked) - now).total_seconds())

    def judge_google(headers: dict[str, str]) -> push.Outcome:
        now = clock()
        with transaction(factory) as session:
            heard = push.accept(session, google.parse_notification(headers), now)
        wake([heard.due], now)
        return heard.outcome

    async def google_hook(request: Request) -> Response:
        await request.body()  # empty from Google; anything big is refused (413) while read
        outcome = await run_in_threadpool(judge_google, dict(request.headers))
        # 404 for anything not ours: Google does not retry it, and it reveals nothing.
        return Response(status_code=404 if outcome is push.Outcome.UNKNOWN else 204)

    def judge_microsoft(notifications: list[Notification]) -> None:
        now = clock()
        with transaction(factory) as session:
            heard = [push.accept(session, n, now) for n in notifications]
        wake([h.due for h in heard], now)

    async def microsoft_hook(request: Request) -> Response:
        token = request.query_params.get("validationToken")
        if token is not None:
            # Graph checks a new subscription's address: echo the token, as plain text.
            return PlainTextResponse(token, headers={"X-Content-Type-Options": "nosniff"})
        notifications = microsoft.parse_notifications(await request.body())
        # Answer first (Graph wants 202 within seconds), record after.
        return Response(status_code=202, background=BackgroundTask(judge_microsoft, notifications))

    return [
        Route("/hooks/google", google_hook, methods=["POST"]),
        Route("/hooks/microsoft", microsoft_hook, methods=["POST"]),
    ]
