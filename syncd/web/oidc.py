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
import secrets
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

from syncd.web import security
from syncd.web.identity import MAX_ADDRESS, SignInRequired, Viewer, canonical
from syncd.web.pages import environment
from syncd.web.settings import GoogleSignIn, MicrosoftSignIn, OidcSettings, WebSettings

log = logging.getLogger(__name__)

Provider = Literal["google", "microsoft"]
NAMES: Mapping[Provider, str] = {"google": "Google", "microsoft": "Microsoft"}

#: ``email`` is Google's short name for this scope; asking for the long name
#: keeps oauthlib from refusing the answer as "scope has changed".
GOOGLE_SCOPES = ("openid", "https://www.googleapis.com/auth/userinfo.email")
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
#: msal adds ``openid`` and ``profile`` (``preferred_username``); no API access at all.
MICROSOFT_SCOPES = ("email",)
MICROSOFT_LOGIN = "https://login.microsoftonline.com"
#: How long a started sign-in may take before its callback is refused.
FLOW_SECONDS = 600
#: Tolerated clock difference to the provider, for ``exp``/``nbf``/``iat``.
CLOCK_SKEW = 120
MAX_NEXT = 2048
#: Their DEBUG lines print token requests and answers (codes, PKCE verifiers,
#: client secrets) in full: requests-oauthlib's token exchange and msal's
#: token cache events.
_CHATTY_LOGGERS = ("requests_oauthlib", "oauthlib", "msal.token_cache")


class SignInFailed(Exception):
    """A sign-in refused for one reason; ``str()`` is safe to log and to show."""


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
        http_client: Any = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        """``http_client`` goes to msal unchanged (tests route the login host with it)."""
        if settings.oidc is None:
            raise ValueError("oidc sign-in needs oidc settings")
        self.settings = settings
        self.oidc: OidcSettings = settings.oidc
        self.http_client = http_client
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
                if provider == "google":
                    url, flow = self._google_start()
                else:
                    url, flow = await run_in_threadpool(self._microsoft_start)
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
                if provider == "google":
                    address = await run_in_threadpool(self._google_finish, flow, query)
                else:
                    address = await run_in_threadpool(self._microsoft_finish, flow, query)
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

    # ------------------------------------------------------------ Google

    def _google_client(self) -> GoogleSignIn:
        assert self.oidc.google is not None, "routes exist only for configured providers"
        return self.oidc.google

    def _google_flow(self, **kwargs: Any) -> Any:
        from google_auth_oauthlib.flow import Flow

        client = self._google_client()
        config = {
            "web": {
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "auth_uri": client.auth_uri,
                "token_uri": client.token_uri,
            }
        }
        return Flow.from_client_config(
            config, scopes=list(GOOGLE_SCOPES), redirect_uri=self._redirect_uri("google"), **kwargs
        )

    def _google_start(self) -> tuple[str, dict[str, Any]]:
        nonce = secrets.token_urlsafe(32)
        flow = self._google_flow(state=secrets.token_urlsafe(32))
        url, state = flow.authorization_url(
            access_type="online", prompt="select_account", nonce=nonce
        )
        return url, {"state": state, "nonce": nonce, "verifier": flow.code_verifier}

    def _google_finish(self, flow: Mapping[str, Any], query: Mapping[str, str]) -> str:
        from google.auth.transport.requests import Request as GoogleRequest
        from google.oauth2 import id_token
        from oauthlib.oauth2.rfc6749.errors import OAuth2Error  # type: ignore[import-untyped]
        from requests import RequestException

        _provider_error("Google", query)
        code = query.get("code", "")
        if not code:
            raise SignInFailed("Google sent no authorization code")
        client = self._google_client()
        exchange = self._google_flow(state=flow["state"], code_verifier=flow.get("verifier"))
        try:
            token = exchange.fetch_token(code=code)
        except OAuth2Error as error:
            raise SignInFailed(f"Google refused the code: {error.error}") from None
        except RequestException as error:
            raise SignInFailed(f"Google's token endpoint: {type(error).__name__}") from None
        except Warning:  # oauthlib: the scopes granted differ from those asked for
            raise SignInFailed("Google granted other scopes than asked for") from None
        raw = token.get("id_token") if isinstance(token, dict) else None
        if not isinstance(raw, str):
            raise SignInFailed("Google sent no ID token")
        try:
            claims = id_token.verify_token(
                raw,
                GoogleRequest(),
                audience=client.client_id,
                certs_url=client.certs_url,
                clock_skew_in_seconds=CLOCK_SKEW,
            )
        except Exception as error:  # whatever fails here, the token is not believed
            raise SignInFailed(
                f"Google's ID token did not verify ({type(error).__name__})"
            ) from None
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise SignInFailed("Google's ID token has another issuer")
        _check_nonce(flow, claims.get("nonce"), "Google")
        if claims.get("email_verified") not in (True, "true"):
            raise SignInFailed("Google has not verified this account's address")
        return _address(claims.get("email"), "Google")

    # ------------------------------------------------------------ Microsoft

    def _microsoft_client(self) -> MicrosoftSignIn:
        assert self.oidc.microsoft is not None, "routes exist only for configured providers"
        return self.oidc.microsoft

    def _msal(self) -> Any:
        """A new msal app per sign-in: it keeps no tokens between people."""
        import msal  # type: ignore[import-untyped]

        client = self._microsoft_client()
        try:
            return msal.ConfidentialClientApplication(
                client.client_id,
                client_credential=client.client_secret,
                authority=f"{MICROSOFT_LOGIN}/{client.tenant}",
                http_client=self.http_client,
                exclude_scopes=["offline_access"],
            )
        except ValueError:
            # msal's word for an authority that answered 4xx (unknown tenant) or non-JSON.
            raise SignInFailed("Microsoft does not know the configured tenant") from None
        except Exception as error:
            raise SignInFailed(f"Microsoft's login service: {type(error).__name__}") from None

    def _microsoft_start(self) -> tuple[str, dict[str, Any]]:
        flow = self._msal().initiate_auth_code_flow(
            list(MICROSOFT_SCOPES),
            redirect_uri=self._redirect_uri("microsoft"),
            prompt="select_account",
            response_mode="form_post" if self._form_post else None,
        )
        url = str(flow.pop("auth_uri"))
        return url, {"state": flow["state"], "msal": flow}

    def _microsoft_finish(self, flow: Mapping[str, Any], query: Mapping[str, str]) -> str:
        _provider_error("Microsoft", query)
        client = self._microsoft_client()
        try:
            result = self._msal().acquire_token_by_auth_code_flow(dict(flow["msal"]), dict(query))
        except ValueError:
            # msal's message repeats the states; the state was checked before, so this is rare.
            raise SignInFailed("the answer does not belong to this sign-in") from None
        except RuntimeError:
            raise SignInFailed("Microsoft's ID token carries another nonce") from None
        except Exception as error:
            raise SignInFailed(f"Microsoft's token endpoint: {type(error).__name__}") from None
        if not isinstance(result, dict) or "error" in result:
            code = result.get("error") if isinstance(result, dict) else None
            raise SignInFailed(f"Microsoft refused the code: {code or 'no answer'}")
        claims = result.get("id_token_claims")
        if not isinstance(claims, dict):
            raise SignInFailed("Microsoft sent no ID token")
        tenant = client.tenant.casefold()
        if str(claims.get("iss", "")).casefold() != f"{MICROSOFT_LOGIN}/{tenant}/v2.0":
            raise SignInFailed("Microsoft's ID token has another issuer")
        if str(claims.get("tid", "")).casefold() != tenant:
            raise SignInFailed("Microsoft's ID token is from another tenant")
        if claims.get("aud") != client.client_id:
            raise SignInFailed("Microsoft's ID token is for another app")
        _check_times(claims, self.now(), "Microsoft")
        preferred = claims.get("preferred_username")
        if isinstance(preferred, str) and "@" in preferred:
            return _address(preferred, "Microsoft")
        return _address(claims.get("email"), "Microsoft")

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


def _provider_error(name: str, query: Mapping[str, str]) -> None:
    """The provider sent the person back with an error (declined, cancelled) instead of a code."""
    error = query.get("error")
    if error:
        shown = error if error.replace("_", "").isalnum() and len(error) <= 64 else "an error"
        raise SignInFailed(f"{name} answered {shown}")


def _check_state(flow: Mapping[str, Any], query: Mapping[str, str]) -> None:
    expected, got = flow.get("state"), query.get("state")
    if not isinstance(expected, str) or not got:
        raise SignInFailed("the answer carries no state")
    if not hmac.compare_digest(expected.encode(), got.encode()):
        raise SignInFailed("the answer does not belong to the sign-in started in this browser")


def _check_nonce(flow: Mapping[str, Any], nonce: object, name: str) -> None:
    expected = flow.get("nonce")
    if not isinstance(expected, str) or not isinstance(nonce, str):
        raise SignInFailed(f"{name}'s ID token carries no nonce")
    if not hmac.compare_digest(expected.encode(), nonce.encode()):
        raise SignInFailed(f"{name}'s ID token carries another nonce")


def _check_times(claims: Mapping[str, Any], now: float, name: str) -> None:
    expires, not_before = claims.get("exp"), claims.get("nbf", claims.get("iat"))
    if not isinstance(expires, int | float) or expires + CLOCK_SKEW <= now:
        raise SignInFailed(f"{name}'s ID token has expired")
    if isinstance(not_before, int | float) and not_before - CLOCK_SKEW > now:
        raise SignInFailed(f"{name}'s ID token is not valid yet")


def _address(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise SignInFailed(f"{name} did not say the account's address")
    address = canonical(value)
    if address.count("@") != 1 or len(address) > MAX_ADDRESS or any(c.isspace() for c in address):
        raise SignInFailed(f"{name} did not say the account's address")
    return address
