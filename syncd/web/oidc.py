"""Sign-in with Google or Microsoft (OpenID Connect), and the session it leaves behind.

The flow, for either provider:

1. ``/signin?next=/m/…`` (where a page without a session is sent): with one
   provider configured it goes straight on, with two it offers both.
2. ``/signin/google`` or ``/signin/microsoft`` starts the authorization code
   flow with the provider's own library: google-auth-oauthlib's ``Flow``
   (state, PKCE S256 and an OpenID ``nonce``) or msal's
   ``initiate_auth_code_flow`` (the same three, made by msal). What the
   callback needs to finish (state, PKCE verifier, nonce, where to go next)
   goes into a short-lived *flow cookie*, encrypted and authenticated, so no
   server-side store is needed and any web replica can take the callback.
3. ``/auth/callback/{provider}`` checks the state against that cookie (a
   callback from another browser, or a second one, is refused), exchanges the
   code with the library, and checks the ID token: Google's signature against
   Google's published certificates (``google.oauth2.id_token.verify_token``),
   then issuer, audience, expiry, nonce and ``email_verified``; Microsoft's
   nonce (msal checks it), then issuer and tenant, audience, ``exp``/``nbf``
   ourselves, because msal 1.3x leaves ID token validation to the app. The
   Microsoft token comes straight from the token endpoint over TLS, which
   OpenID Connect Core (3.1.3.7, item 6) accepts in place of a signature check.
4. The verified address goes into the *session cookie* with an expiry, and
   the browser is sent to ``next``: only ever a path on this site (see
   ``safe_next``), so the sign-in cannot be turned into an open redirect.

Microsoft sign-in is single-tenant: ``preferred_username`` is the person's
sign-in name as the tenant's admins set it, which is an address syncd can
trust only if the token is from the organization's own tenant (a token from
any tenant could name any address). So the tenant is a directory id, and the
token's ``iss`` and ``tid`` must both be that tenant.

Cookies are Fernet tokens (AES plus HMAC; ``cryptography``) under keys
derived (HKDF) from the session secret, one key per cookie kind, so a flow
cookie can never pass as a session. Both are HttpOnly, Secure and
``__Host-`` prefixed when ``secure_cookies`` is on. The session cookie is
SameSite=Lax: a click on the agenda link in a mail or calendar is a
cross-site top-level GET that must carry it, while a cross-site POST must
not. Google answers with a redirect (a GET) to the callback, so its flow
cookie is Lax too. Microsoft answers with ``response_mode=form_post`` (msal's
recommendation: the code never sits in a URL, a history or a Referer): that
is a cross-site POST, so Microsoft's flow cookie is SameSite=None, which the
state check makes harmless (a forged callback cannot know the state). A
SameSite=None cookie must be Secure, so with ``secure_cookies = false``
(plain-http development) Microsoft answers by redirect as Google does.

No token, code, state or secret is ever logged: failures are logged by a
fixed reason, and the libraries' DEBUG logs that print token requests and
answers in full (``_CHATTY_LOGGERS``) are held at WARNING.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

import providers
from providers.signin import SignInFailed, SignInFlow, SignInPlugin
from syncd.web import security
from syncd.web.identity import MAX_ADDRESS, SignInRequired, Viewer, canonical
from syncd.web.pages import environment
from syncd.web.settings import OidcSettings, WebSettings

log = logging.getLogger(__name__)

Provider = Literal["google", "microsoft"]
NAMES: Mapping[Provider, str] = {"google": "Google", "microsoft": "Microsoft"}

#: How long a started sign-in may take before its callback is refused.
FLOW_SECONDS = 600
MAX_NEXT = 2048
#: Their DEBUG lines print token requests and answers (codes, PKCE verifiers,
#: client secrets) in full: requests-oauthlib's token exchange and msal's
#: token cache events.
_CHATTY_LOGGERS = ("requests_oauthlib", "oauthlib", "msal.token_cache")


def safe_next(value: str | None) -> str:
    """``value`` if it is a path on this site, else ``/``.

    A browser reads ``//host`` and ``/\\host`` as another host, and some
    read a backslash anywhere as a slash, so anything with a scheme, a host,
    a backslash or a control character falls back to ``/``.
    """
    if not value or len(value) > MAX_NEXT or not value.startswith("/"):
        return "/"
    if value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


# --------------------------------------------------------------------------- cookies


class _Sealed:
    """JSON in an encrypted, authenticated, timestamped cookie value."""

    def __init__(self, secret: bytes, purpose: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=f"syncd {purpose}".encode()
        ).derive(secret)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, value: Mapping[str, Any], now: float) -> str:
        data = json.dumps(value, separators=(",", ":")).encode("utf-8")
        return self._fernet.encrypt_at_time(data, int(now)).decode("ascii")

    def open(self, token: str | None, ttl: int, now: float) -> dict[str, Any] | None:
        if not token:
            return None
        try:
            data = self._fernet.decrypt_at_time(token.encode("ascii"), ttl, int(now))
            value = json.loads(data)
        except (InvalidToken, UnicodeError, ValueError):
            return None
        return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class Session:
    address: str
    expires: float


# --------------------------------------------------------------------------- pages

_PAGE = """{% extends "base.html" %}
{% block title %}{{ heading }}{% endblock %}
{% block main %}
<h1>{{ heading }}</h1>
{% if message %}<p>{{ message }}</p>{% endif %}
{% if providers %}
<ul>
{% for slug, name in providers %}
<li><a href="/signin/{{ slug }}?next={{ next|urlencode }}">Sign in with {{ name }}</a></li>
{% endfor %}
</ul>
{% endif %}
{% if address %}
<p>Signed in as {{ address }}. <a href="/">Your 1:1s and action items</a>.</p>
{% if next != "/" %}<p><a href="{{ next }}">Continue</a></p>{% endif %}
<form method="post" action="/signout">
{{ csrf|csrf_field }}
<button type="submit">Sign out</button>
</form>
{% endif %}
{% if again %}<p><a href="{{ again }}">Sign in</a></p>{% endif %}
{% endblock %}
"""


class OidcAuthenticator:
    """Sign-in with Google and/or Microsoft; a session cookie names the person afterwards."""

    def __init__(
        self,
        settings: WebSettings,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        if settings.oidc is None:
            raise ValueError("oidc sign-in needs oidc settings")
        self.settings = settings
        self.oidc: OidcSettings = settings.oidc
        self.now = now
        self._sessions = _Sealed(self.oidc.session_secret, "session cookie")
        self._flows = _Sealed(self.oidc.session_secret, "sign-in flow cookie")
        self._page = environment().from_string(_PAGE)  # the pages' filters and escaping
        for name in _CHATTY_LOGGERS:
            if logging.getLogger(name).getEffectiveLevel() < logging.WARNING:
                logging.getLogger(name).setLevel(logging.WARNING)

    # ------------------------------------------------------------ identity

    @property
    def providers(self) -> tuple[Provider, ...]:
        found: list[Provider] = []
        if self.oidc.google is not None:
            found.append("google")
        if self.oidc.microsoft is not None:
            found.append("microsoft")
        return tuple(found)

    def session(self, request: Request) -> Session | None:
        """The signed-in person of this browser, or None (no, expired or forged cookie)."""
        now = self.now()
        value = self._sessions.open(
            request.cookies.get(self._cookie("session")), self._session_seconds, now
        )
        if value is None:
            return None
        address, expires = value.get("a"), value.get("x")
        if not isinstance(address, str) or not isinstance(expires, int | float):
            return None
        if expires <= now:
            return None
        return Session(address, expires)

    def identify(self, request: Request) -> Viewer:
        session = self.session(request)
        if session is None:
            raise SignInRequired()
        return Viewer(session.address, "oidc")

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/signin", self.signin, methods=["GET"]),
            Route("/signout", self.signout, methods=["POST"]),
        ]
        for provider in self.providers:
            routes.append(Route(f"/signin/{provider}", self._start(provider), methods=["GET"]))
            routes.append(
                Route(
                    f"/auth/callback/{provider}",
                    self._callback(provider),
                    methods=["GET", "POST"] if provider == "microsoft" else ["GET"],
                )
            )
        return routes

    # ------------------------------------------------------------ endpoints

    async def signin(self, request: Request) -> Response:
        target = safe_next(request.query_params.get("next"))
        session = self.session(request)
        if session is not None:
            return self._render(request, "Signed in", address=session.address, next=target)
        if len(self.providers) == 1:
            return RedirectResponse(self._start_path(self.providers[0], target), status_code=303)
        return self._render(
            request,
            "Sign in",
            message="Sign in with the account your 1:1 invites are sent to.",
            providers=[(p, NAMES[p]) for p in self.providers],
            next=target,
        )

    async def signout(self, request: Request) -> Response:
        form = await request.form(max_fields=5, max_files=0)
        submitted = form.get(security.CSRF_FIELD)
        if not security.csrf_ok(
            request, submitted if isinstance(submitted, str) else None, self.settings
        ):
            return self._render(
                request,
                "Please try again",
                status=403,
                message="This form has expired or did not come from this site.",
                again="/signin",
            )
        response = self._render(
            request, "Signed out", message="You are signed out of the 1:1 agendas.", again="/signin"
        )
        self._forget(response, "session")
        return response

    def _start(self, provider: Provider) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            target = safe_next(request.query_params.get("next"))
            try:
                url, flow = await run_in_threadpool(self._flow(provider).start)
            except SignInFailed as failed:
                log.warning("sign-in with %s could not start: %s", NAMES[provider], failed)
                return self._failed(request, provider, str(failed), target)
            response = RedirectResponse(url, status_code=303)
            cookie = self._flows.seal({"p": provider, "next": target, **flow}, self.now())
            cross_site_post = provider == "microsoft" and self._form_post
            self._remember(
                response, "flow", cookie, FLOW_SECONDS, "none" if cross_site_post else "lax"
            )
            return response

        return endpoint

    def _callback(self, provider: Provider) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            flow = self._flows.open(
                request.cookies.get(self._cookie("flow")), FLOW_SECONDS, self.now()
            )
            target = safe_next(flow.get("next") if flow else None)
            if request.method == "POST":
                form = await request.form(max_fields=20, max_files=0)
                query = {key: value for key, value in form.items() if isinstance(value, str)}
            else:
                query = dict(request.query_params.items())
            try:
                if flow is None or flow.get("p") != provider:
                    raise SignInFailed(
                        "no sign-in was started in this browser, or it took too long; start again"
                    )
                _check_state(flow, query)
                claimed = await run_in_threadpool(self._flow(provider).finish, flow, query)
                address = _address(claimed, NAMES[provider])
            except SignInFailed as failed:
                log.warning("sign-in with %s refused: %s", NAMES[provider], failed)
                response = self._failed(request, provider, str(failed), target)
                self._forget(response, "flow")
                return response
            log.info("signed in with %s as %s", NAMES[provider], address)
            response = RedirectResponse(target, status_code=303)
            self._forget(response, "flow")
            expires = int(self.now()) + self._session_seconds
            cookie = self._sessions.seal({"a": address, "x": expires}, self.now())
            self._remember(response, "session", cookie, self._session_seconds)
            return response

        return endpoint

    # ------------------------------------------------------------ providers

    def _flow(self, provider: Provider) -> SignInFlow:
        """The provider's flow for one sign-in: its plugin speaks its protocol."""
        plugin = providers.plugin(provider)
        assert isinstance(plugin, SignInPlugin), f"{provider} has no sign-in"
        client = self.oidc.google if provider == "google" else self.oidc.microsoft
        assert client is not None, "routes exist only for configured providers"
        return plugin.sign_in(
            client,
            self._redirect_uri(provider),
            form_post=self._form_post,
            now=self.now,
        )

    # ------------------------------------------------------------ helpers

    @property
    def _form_post(self) -> bool:
        """Whether Microsoft posts its answer (needs a Secure, SameSite=None flow cookie)."""
        return self.settings.secure_cookies

    @property
    def _session_seconds(self) -> int:
        return self.oidc.session_hours * 3600

    def _redirect_uri(self, provider: Provider) -> str:
        return f"{self.settings.base_url.rstrip('/')}/auth/callback/{provider}"

    @staticmethod
    def _start_path(provider: Provider, target: str) -> str:
        return f"/signin/{provider}?next={quote(target, safe='/')}"

    def _cookie(self, kind: Literal["session", "flow"]) -> str:
        name = "syncd-session" if kind == "session" else "syncd-signin"
        return f"__Host-{name}" if self.settings.secure_cookies else name

    def _remember(
        self,
        response: Response,
        kind: Literal["session", "flow"],
        value: str,
        seconds: int,
        samesite: Literal["lax", "none"] = "lax",
    ) -> None:
        response.set_cookie(
            self._cookie(kind),
            value,
            max_age=seconds,
            path="/",
            secure=self.settings.secure_cookies,
            httponly=True,
            samesite=samesite,
        )

    def _forget(self, response: Response, kind: Literal["session", "flow"]) -> None:
        response.delete_cookie(
            self._cookie(kind),
            path="/",
            secure=self.settings.secure_cookies,
            httponly=True,
            samesite="lax",
        )

    def _render(
        self, request: Request, heading: str, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        token = security.csrf_token(request, self.settings)
        context.setdefault("next", "/")
        html = self._page.render(heading=heading, csrf=token, **context)
        response = HTMLResponse(html, status_code=status)
        security.remember_csrf(response, request, token, self.settings)
        return response

    def _failed(self, request: Request, provider: Provider, reason: str, target: str) -> Response:
        return self._render(
            request,
            "Sign-in did not work",
            status=400,
            message=f"Signing in with {NAMES[provider]} did not work: {reason}.",
            again=f"/signin?next={quote(target, safe='/')}",
        )


def _check_state(flow: Mapping[str, Any], query: Mapping[str, str]) -> None:
    expected, got = flow.get("state"), query.get("state")
    if not isinstance(expected, str) or not got:
        raise SignInFailed("the answer carries no state")
    if not hmac.compare_digest(expected.encode(), got.encode()):
        raise SignInFailed("the answer does not belong to the sign-in started in this browser")


def _address(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise SignInFailed(f"{name} did not say the account's address")
    address = canonical(value)
    if address.count("@") != 1 or len(address) > MAX_ADDRESS or any(c.isspace() for c in address):
        raise SignInFailed(f"{name} did not say the account's address")
    return address
