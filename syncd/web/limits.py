"""Every request body is bounded while it is read, before any route sees it.

A route that calls ``request.body()`` or ``request.form()`` holds the whole
body in memory, so a limit checked afterwards is no limit: a 64 MiB post to
a webhook would cost the daemon that much (more, as it is copied) before
being refused. This middleware refuses a declared ``Content-Length`` over
the limit without reading a byte, and counts the bytes of a chunked body as
they arrive, stopping at the limit. Either way the answer is 413 and the
connection is closed; the route never runs or is stopped mid-read.

Limits are per path (``limit_for``), so a route that needs less (Google's
push has no body at all) gets less.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Webhooks, API and forms: far above any real agenda edit or Graph batch.
DEFAULT_LIMIT = 1024 * 1024


class TooLarge(Exception):
    """Raised from ``receive`` once a body passes its limit; caught below.

    An app mounted inside (the JSON API) catches it first, in its own
    exception handling: it must answer 413 itself (``api.create`` does).
    """


class BoundedBodies:
    def __init__(
        self,
        app: ASGIApp,
        answer: Callable[[str], Response],
        *,
        default: int = DEFAULT_LIMIT,
        limit_for: Callable[[str], int | None] = lambda path: None,
    ) -> None:
        """``answer(path)``: the 413 to send, in the shape that path's clients read.

        ``limit_for(path)``: a path's own limit, None for ``default``.
        """
        self.app = app
        self.answer = answer
        self.default = default
        self.limit_for = limit_for

    def limit(self, path: str) -> int:
        own = self.limit_for(path)
        return self.default if own is None else own

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.limit(path)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(path, scope, receive, send)
            return
        received = 0
        started = False

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded, tracked)
        except TooLarge:
            if started:  # a route that answered before reading everything; nothing to add
                return
            await self._refuse(path, scope, receive, send)

    async def _refuse(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        response = self.answer(path)
        response.headers["connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)
