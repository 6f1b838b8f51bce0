"""CSRF tokens, security headers, and keeping agenda tokens out of logs (``syncd.logs``).

CSRF is a double-submit token: a random value per browser in a cookie that
pages cannot read (HttpOnly), SameSite=Strict and, when cookies are secure,
``__Host-``-prefixed (so no sibling subdomain can plant one). Every form
carries the same value in a hidden field, every state-changing API call in
the ``X-CSRF-Token`` header (API clients get it, and the cookie, from any
GET of the API). A request whose value is missing or differs is refused with
403, whatever the sign-in mode: a proxy's identity travels with every
request the browser makes, so it needs this, and the link mode costs nothing
to treat the same way.
"""

from __future__ import annotations

import hmac
import re
import secrets

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# One redaction for every log line, syncd's own and uvicorn's, re-exported here.
from syncd.logs import RedactTokens as RedactTokens
from syncd.logs import redact as redact
from syncd.logs import redact_logs as redact_logs
from syncd.web.settings import WebSettings

CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")

# Scripts only from our own files (``/static/app.js``: no inline script, no eval);
# ``connect-src 'self'`` lets that script post the page's own forms with fetch.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
    "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
# Agenda content is personal: no shared cache may keep it.
PRIVATE_PREFIXES = ("/m/", "/p/", "/api/")


def cookie_name(settings: WebSettings) -> str:
    return "__Host-syncd-csrf" if settings.secure_cookies else "syncd-csrf"


def csrf_token(request: Request, settings: WebSettings) -> str:
    """This browser's token: the one in its cookie, or a new one to set."""
    current = request.cookies.get(cookie_name(settings), "")
    return current if _TOKEN_SHAPE.match(current) else secrets.token_urlsafe(32)


def remember_csrf(response: Response, request: Request, token: str, settings: WebSettings) -> None:
    """Set the cookie when the browser does not have this token yet."""
    if request.cookies.get(cookie_name(settings)) == token:
        return
    response.set_cookie(
        cookie_name(settings),
        token,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )


async def posted(request: Request, max_fields: int = 20) -> dict[str, str]:
    """A form post's text fields (no files; more than ``max_fields`` is refused)."""
    form = await request.form(max_fields=max_fields, max_files=0)
    return {key: value for key, value in form.items() if isinstance(value, str)}


def csrf_ok(request: Request, submitted: str | None, settings: WebSettings) -> bool:
    expected = request.cookies.get(cookie_name(settings), "")
    if not submitted or not _TOKEN_SHAPE.match(expected):
        return False
    return hmac.compare_digest(submitted.encode(), expected.encode())


class SecurityHeaders:
    """Adds the security headers to every response of the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = dict(HEADERS)
                if path.startswith(PRIVATE_PREFIXES):
                    extra["cache-control"] = "no-store"
                for name, value in extra.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
