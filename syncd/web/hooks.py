"""Provider webhooks: ``/hooks/{provider}``, marked due at once, judged by the provider.

A webhook never syncs: it records that a calendar changed and returns, so a
burst of notifications costs one short transaction each, and a slow
provider or database never makes the provider's delivery time out. What a
request means (which channel, a handshake, Graph's validation echo) and
what to answer is the provider plugin's to say (``Plugin.webhook``); this
module only judges the notifications against the stored channels, marks
calendars due and wakes the worker. Unknown, stale and forged notifications
all get the same answer, so the response says nothing about which channels
exist. A plugin that asks to answer first (Graph drops slow endpoints) has
its notifications judged after the answer went out: a lost mark only costs
latency (polling catches up).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import providers
from providers.base import Notification, Plugin, WebhookRequest
from syncd import push
from syncd.store import transaction

_PREFIX = "/hooks/"


def _pushing(name: str) -> Plugin | None:
    """The plugin serving ``/hooks/<name>``, if there is one with push; imported on first use."""
    if name not in providers.NAMES:
        return None
    plugin = providers.plugin(name)
    return plugin if plugin.webhook_limit > 0 else None


def body_limit(path: str) -> int | None:
    """What a webhook body may hold: its provider's bound; None (the default) elsewhere."""
    if not path.startswith(_PREFIX):
        return None
    plugin = _pushing(path[len(_PREFIX) :])
    return plugin.webhook_limit if plugin is not None else None


def routes(
    factory: sessionmaker[Session],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_mark: Callable[[float], None] | None = None,
) -> list[Route]:
    def judge(notifications: Sequence[Notification]) -> list[push.Outcome]:
        """Mark what is ours; after the commit (the marks are there when the worker looks),
        wake the worker at the earliest due time."""
        now = clock()
        with transaction(factory) as session:
            heard = [push.accept(session, n, now) for n in notifications]
        marked = [h.due for h in heard if h.due is not None]
        if on_mark is not None and marked:
            on_mark((min(marked) - now).total_seconds())
        return [h.outcome for h in heard]

    async def hook(request: Request) -> Response:
        plugin = _pushing(request.path_params["provider"])
        if plugin is None:
            await request.body()
            return Response(status_code=404)
        answer = plugin.webhook(
            WebhookRequest(
                headers=dict(request.headers),
                query=dict(request.query_params),
                body=await request.body(),
            )
        )
        if answer.text is not None:
            return PlainTextResponse(
                answer.text, status_code=answer.status, headers=dict(answer.headers)
            )
        if answer.later:
            task = BackgroundTask(judge, answer.notifications)
            return Response(status_code=answer.status, background=task)
        outcomes = await run_in_threadpool(judge, answer.notifications)
        unknown = all(outcome is push.Outcome.UNKNOWN for outcome in outcomes)
        if answer.unknown_status is not None and unknown:
            return Response(status_code=answer.unknown_status)
        return Response(status_code=answer.status, headers=dict(answer.headers))

    return [Route(_PREFIX + "{provider}", hook, methods=["POST"])]
