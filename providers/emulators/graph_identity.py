"""The Microsoft identity platform endpoints msal uses for an app-only (client credentials) token.

msal keeps the production authority ``https://login.microsoftonline.com/{tenant}``
and reaches the emulator through the rewriting ``requests`` session of
``GraphEmulator.http_client()``. It fetches:

* ``GET /{tenant}/v2.0/.well-known/openid-configuration`` — every endpoint in
  it is on the https login host, so msal's later calls go through the same
  rewrite; and, only when the app enables instance discovery for an authority
  msal does not know, ``GET /common/discovery/instance`` (served too).
* ``POST /{tenant}/oauth2/v2.0/token`` with ``grant_type=client_credentials``,
  ``client_id``, ``client_secret`` (form or HTTP Basic) and
  ``scope=https://graph.microsoft.com/.default``.

Answers, in the order Entra checks: unknown tenant 400 ``invalid_request``
(AADSTS90002); another grant 400 ``unsupported_grant_type`` (AADSTS70003);
unknown app, or consent withdrawn (``revoke_consent``: the tenant's service
principal is gone) 400 ``unauthorized_client`` (AADSTS700016); no secret 401
``invalid_client`` (AADSTS7000216); a wrong one 401 ``invalid_client``
(AADSTS7000215); a scope other than Graph's ``/.default`` 400
``invalid_scope`` (AADSTS1002012). Tokens are JWT-shaped (Graph's audience,
the app registration's ``roles``, by default ``Calendars.ReadWrite`` alone, a
random signature) and live 3599 s, so a client that decodes them sees what
it would in production; API calls
check that the bearer token is one issued here and not expired or expired by
``expire_tokens``. Withdrawing consent leaves outstanding tokens working
until they expire, as with the real service.

One person's delegated grant (the device authorization grant, for a public
client: no secret) is served as well:

* ``POST /{tenant}/oauth2/v2.0/devicecode`` (``client_id``, ``scope``) answers
  ``device_code``, ``user_code``, ``verification_uri``, ``expires_in``,
  ``interval`` (1 s, so tests poll fast) and ``message``.
* the token endpoint's ``urn:ietf:params:oauth:grant-type:device_code`` grant
  answers 400 ``authorization_pending`` (AADSTS70016) until the code is
  approved (``approve_device_code``), ``expired_token`` (AADSTS70020) after
  it ran out; then an access token acting as that user, a refresh token, an
  ``id_token`` (``oid``, ``tid``, ``preferred_username``) and, when
  ``client_info=1`` is sent, ``client_info`` (``{uid, utid}``): what msal
  needs to keep an account in its cache.
* the ``refresh_token`` grant rotates the refresh token; after
  ``revoke_user_grant`` it answers 400 ``invalid_grant`` (AADSTS50173).

A delegated token reaches that user's own mailbox only (403 elsewhere).

Sign-in to a web app (the authorization code flow with OpenID Connect, for a
confidential client: the app registration's secret) is served too:

* ``GET /{tenant}/oauth2/v2.0/authorize`` stands for the sign-in page: the
  person named by ``login_hint``, else the one signed in at the emulator
  (``sign_in_as``), consents at once and is sent to ``redirect_uri`` with
  ``code``, ``state``, ``session_state`` and, when ``client_info=1`` was
  asked for, ``client_info``: by a redirect with them in the query, or with
  ``response_mode=form_post`` by a page whose form posts them there (the
  browser submits it by script). An unknown tenant (AADSTS90002), app
  (AADSTS700016) or a ``redirect_uri`` not registered with the app
  (AADSTS50011, ``add_redirect_uri``) is an error page, never a redirect;
  another ``response_type`` and nobody to sign in are redirected errors
  (``unsupported_response_type``, ``interaction_required``).
* the token endpoint's ``authorization_code`` grant checks, in this order:
  the client secret (AADSTS7000218 missing, AADSTS7000215 wrong); the code,
  which is redeemable once (a second time AADSTS54005 "already redeemed"),
  for 10 minutes (AADSTS70008), by the app it was issued to; the same
  ``redirect_uri`` (AADSTS70000, a number chosen here); the PKCE verifier
  (AADSTS50148). It answers an access token, a refresh token only with
  ``offline_access``, and a v2.0 ``id_token``: ``iss``
  ``https://login.microsoftonline.com/{tenant}/v2.0``, ``aud`` the client id,
  ``iat``/``nbf``/``exp``, the request's ``nonce``, ``name``, ``oid``,
  ``preferred_username``, ``email`` (with the ``email`` scope), ``sub``
  (pairwise: one per user and app), ``tid``, ``ver`` 2.0, ``uti``.
  ``tamper_next_id_token(**claims)`` changes the claims of the next one, for
  tests of a client's own checks (another audience, tenant or nonce).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .graph_errors import EntraError, GraphError

__all__ = ["DEVICE_CODE_GRANT", "LOGIN_HOST", "Authority", "Grant", "SignInAnswer"]

LOGIN_HOST = "login.microsoftonline.com"
GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
TOKEN_LIFETIME = 3599
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_CODE_LIFETIME = 900
DEVICE_CODE_INTERVAL = 1
AUTH_CODE_LIFETIME = 600
_OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
_WWW_AUTHENTICATE = (
    'Bearer realm="", '
    'authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
    f'client_id="{GRAPH_APP_ID}"'
)


@dataclass(frozen=True)
class Grant:
    """What an access token stands for: this app in this tenant, until a time."""

    token: str
    expires: float
    #: The user a delegated token acts as; ``None`` for an app-only token.
    user: str | None = None
    #: An app-only token's application permissions (its ``roles`` claim).
    roles: frozenset[str] = frozenset()


@dataclass
class _DeviceCode:
    device_code: str
    user_code: str
    client_id: str
    scope: str
    expires: float
    user: str | None = None
    user_id: str = ""


@dataclass(frozen=True)
class SignInAnswer:
    """Where the sign-in page sends the browser, with what, and how."""

    redirect_uri: str
    params: dict[str, str]
    form_post: bool = False

    def location(self) -> str:
        return _redirect(self.redirect_uri, **self.params)

    def page(self) -> str:
        """The auto-submitting form Entra answers ``response_mode=form_post`` with."""
        fields = "".join(
            f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}" />'
            for name, value in self.params.items()
        )
        return (
            "<html><head><title>Working...</title></head><body>"
            f'<form method="POST" name="hiddenform" action="{html.escape(self.redirect_uri)}">'
            f"{fields}<noscript><p>Script is disabled. Click Submit to continue.</p>"
            '<input type="submit" value="Submit" /></noscript></form>'
            "<script>document.forms[0].submit();</script></body></html>"
        )


@dataclass(frozen=True)
class _AuthCode:
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    user_id: str
    nonce: str | None
    challenge: str | None
    method: str
    expires: float


@dataclass(frozen=True)
class _Refresh:
    client_id: str
    scope: str
    user: str
    user_id: str


class Authority:
    """One tenant with one app registration whose secret the token endpoint checks."""

    def __init__(
        self,
        tenant: str,
        directory: Callable[[str], tuple[str, str] | None] | None = None,
        resource: str = GRAPH_RESOURCE,
    ) -> None:
        """``directory``: a user's (address, object id) by address, for sign-in.

        ``resource``: the Graph this tenant's tokens are for, which decides the
        scopes the token endpoint accepts (``https://graph.microsoft.us`` in
        the US Government clouds, ``https://microsoftgraph.chinacloudapi.cn``
        in China).
        """
        self.tenant = tenant
        self.resource = resource
        #: The login root of the request being answered (its thread's): what ID
        #: tokens name as their issuer, as Entra names its own host.
        self._request = threading.local()
        self._directory = directory or (lambda address: None)
        self._redirect_uris: set[str] = set()
        self._signed_in: tuple[str, str] | None = None
        self._auth_codes: dict[str, _AuthCode] = {}
        self._redeemed: set[str] = set()
        self._id_token_overrides: dict[str, Any] = {}
        self.client_id = str(uuid.uuid4())
        self.client_secret = secrets.token_urlsafe(30)
        self.service_principal_id = str(uuid.uuid4())
        self._lock = threading.Lock()
        self._grants: dict[str, Grant] = {}
        self._consented = True
        self._device_codes: dict[str, _DeviceCode] = {}
        self._refresh_tokens: dict[str, _Refresh] = {}
        #: The application permissions an admin consented to for the app
        #: registration; each app-only token carries those of its issue time.
        self.roles: frozenset[str] = frozenset({"Calendars.ReadWrite"})

    # ------------------------------------------------------------- endpoints

    def openid_configuration(
        self, tenant: str, root: str = f"https://{LOGIN_HOST}"
    ) -> dict[str, Any]:
        """The tenant's OpenID configuration, its endpoints on the login ``root`` asked."""
        self._require_tenant(tenant)
        login = f"{root}/{self.tenant}"
        return {
            "token_endpoint": f"{login}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{login}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{login}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.resource}/oidc/userinfo",
            "authorization_endpoint": f"{login}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{login}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{login}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "nonce"],
            "kerberos_endpoint": f"{login}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": urlsplit(self.resource).hostname,
            "rbac_url": "https://pas.windows.net",
        }

    def instance_discovery(
        self, query: Mapping[str, list[str]], root: str = f"https://{LOGIN_HOST}"
    ) -> dict[str, Any]:
        """The alias list msal caches per cloud (and the tenant's discovery document)."""
        host = urlsplit(root).netloc
        endpoint = (query.get("authorization_endpoint") or [""])[-1]
        parts = urlsplit(endpoint).path.split("/")
        tenant = parts[1] if len(parts) > 1 and parts[1] else "common"
        return {
            "tenant_discovery_endpoint": (f"{root}/{tenant}/v2.0/.well-known/openid-configuration"),
            "api-version": "1.1",
            "metadata": [
                {
                    "preferred_network": host,
                    "preferred_cache": "login.windows.net",
                    "aliases": [
                        host,
                        "login.windows.net",
                        "login.microsoft.com",
                        "sts.windows.net",
                    ],
                }
            ],
        }

    def token(
        self,
        tenant: str,
        form: Mapping[str, str],
        authorization: str | None,
        root: str = f"https://{LOGIN_HOST}",
    ) -> dict[str, Any]:
        """A client-credentials token for Graph, or the EntraError the real service answers.

        ``root``: the login root the client used; ID tokens name it in ``iss``.
        """
        self._request.root = root
        self._require_tenant(tenant)
        client_id, secret = _client(form, authorization)
        grant_type = form.get("grant_type", "")
        if grant_type == DEVICE_CODE_GRANT:
            return self._device_code_token(form)
        if grant_type == "refresh_token":
            return self._refresh_token(form)
        if grant_type == "authorization_code":
            return self._authorization_code(form, client_id, secret)
        if grant_type != "client_credentials":
            raise EntraError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        if client_id != self.client_id or not self._consented:
            raise EntraError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant}'. This can happen if the application has not been installed by "
                "the administrator of the tenant or consented to by any user in the tenant. You "
                "may have sent your authentication request to the wrong tenant.",
            )
        if not secret:
            raise EntraError(
                401,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the "
                "'client_credentials' grant type.",
            )
        self._require_secret(secret)
        scope = form.get("scope", "")
        if scope.strip() not in {f"{self.resource}/.default", f"{GRAPH_APP_ID}/.default"}:
            raise EntraError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        return {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME,
            "access_token": self._issue(),
        }

    def device_code(self, tenant: str, form: Mapping[str, str]) -> dict[str, Any]:
        """Start a device authorization grant for a public client."""
        self._require_tenant(tenant)
        client_id = form.get("client_id", "")
        self._require_client(client_id)
        scope = self._delegated_scope(form.get("scope", ""))
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        pending = _DeviceCode(
            device_code=secrets.token_urlsafe(32),
            user_code=user_code,
            client_id=client_id,
            scope=scope,
            expires=time.time() + DEVICE_CODE_LIFETIME,
        )
        with self._lock:
            self._device_codes[pending.device_code] = pending
        uri = "https://microsoft.com/devicelogin"
        return {
            "user_code": user_code,
            "device_code": pending.device_code,
            "verification_uri": uri,
            "expires_in": DEVICE_CODE_LIFETIME,
            "interval": DEVICE_CODE_INTERVAL,
            "message": (
                f"To sign in, use a web browser to open the page {uri} and enter the code "
                f"{user_code} to authenticate."
            ),
        }

    def authorize(self, tenant: str, query: Mapping[str, list[str]]) -> SignInAnswer:
        """The sign-in page: consent at once, answer where the browser goes next."""

        def one(name: str) -> str:
            values = query.get(name)
            return values[-1] if values else ""

        self._require_tenant(tenant)
        client_id = one("client_id")
        self._require_client(client_id)
        redirect_uri = one("redirect_uri")
        with self._lock:
            registered = redirect_uri in self._redirect_uris
            signed_in = self._signed_in
        if not registered:
            raise EntraError(
                400,
                "invalid_request",
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                f"redirect URIs configured for the application '{client_id}'. Make sure the "
                "redirect URI sent in the request matches one added to your application in the "
                "Azure portal.",
            )
        state = {"state": one("state")} if one("state") else {}
        form_post = one("response_mode") == "form_post"
        if one("response_type") != "code":
            error = {
                "error": "unsupported_response_type",
                "error_description": "AADSTS700054: response_type is not enabled for the "
                "application.",
            }
            return SignInAnswer(redirect_uri, {**error, **state}, form_post)
        hint = one("login_hint")
        person = self._directory(hint) if hint else signed_in
        if person is None:
            error = {
                "error": "interaction_required",
                "error_description": "AADSTS50058: A silent sign-in request was sent but no "
                "user is signed in.",
            }
            return SignInAnswer(redirect_uri, {**error, **state}, form_post)
        user, user_id = person
        code = "1.emu-" + secrets.token_urlsafe(48)
        with self._lock:
            self._auth_codes[code] = _AuthCode(
                client_id=client_id,
                redirect_uri=redirect_uri,
                scope=one("scope"),
                user=user,
                user_id=user_id,
                nonce=one("nonce") or None,
                challenge=one("code_challenge") or None,
                method=one("code_challenge_method") or "plain",
                expires=time.time() + AUTH_CODE_LIFETIME,
            )
        answer = {"code": code, **state, "session_state": str(uuid.uuid4())}
        if one("client_info") == "1":
            answer["client_info"] = _segment({"uid": user_id, "utid": self.tenant})
        return SignInAnswer(redirect_uri, answer, form_post)

    def add_redirect_uri(self, uri: str) -> None:
        """Register a web redirect URI with the app, as in the app registration's Authentication."""
        with self._lock:
            self._redirect_uris.add(uri)

    def sign_in_as(self, user: str, user_id: str) -> None:
        """The person signed in at the sign-in page, for authorize requests without a hint."""
        with self._lock:
            self._signed_in = (user, user_id)

    def tamper_next_id_token(self, **claims: Any) -> None:
        """The next sign-in ID token carries these claims instead (None removes one)."""
        with self._lock:
            self._id_token_overrides = dict(claims)

    def approve_device_code(self, user_code: str | None, user: str, user_id: str) -> None:
        """``user`` signs in and consents to the pending code (the newest if ``None``)."""
        with self._lock:
            pending = [p for p in self._device_codes.values() if p.user is None]
            if user_code is not None:
                pending = [p for p in pending if p.user_code == user_code]
            if not pending:
                raise KeyError(f"no pending device code {user_code or ''}".strip())
            chosen = pending[-1]
            chosen.user = user
            chosen.user_id = user_id

    def revoke_user_grant(self, user: str) -> None:
        """The person's refresh tokens stop working (password reset, sessions revoked)."""
        folded = user.casefold()
        with self._lock:
            self._refresh_tokens = {
                token: grant
                for token, grant in self._refresh_tokens.items()
                if grant.user.casefold() != folded
            }

    def authenticate(self, authorization: str | None) -> Grant:
        """The grant behind an API call's bearer token; 401 as Graph answers otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthenticated("Access token is empty.")
        with self._lock:
            grant = self._grants.get(token.strip())
        if grant is None:
            raise _unauthenticated("Access token validation failure. Invalid audience.")
        if grant.expires <= time.time():
            raise _unauthenticated("Lifetime validation failed, the token is expired.")
        return grant

    # ---------------------------------------------------------------- world

    def revoke_consent(self) -> None:
        with self._lock:
            self._consented = False

    def grant_consent(self) -> None:
        with self._lock:
            self._consented = True

    def expire_tokens(self) -> None:
        with self._lock:
            self._grants = {
                token: Grant(token, time.time() - 1, grant.user, grant.roles)
                for token, grant in self._grants.items()
            }

    # ------------------------------------------------------------ internals

    def _require_secret(self, secret: str) -> None:
        if not secrets.compare_digest(secret, self.client_secret):
            raise EntraError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                f"the client secret value, not the client secret ID, for a secret added to app "
                f"'{self.client_id}'.",
            )

    def _require_client(self, client_id: str) -> None:
        if client_id != self.client_id or not self._consented:
            raise EntraError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant}'.",
            )

    def _delegated_scope(self, scope: str) -> str:
        """Only Calendars.ReadWrite, bare (the global cloud's Graph) or on this cloud's Graph."""
        asked = scope.split()
        graph = [s for s in asked if s not in _OIDC_SCOPES]
        bare = self.resource == GRAPH_RESOURCE
        if not graph or any(
            s != f"{self.resource}/Calendars.ReadWrite"
            and not (bare and s == "Calendars.ReadWrite")
            for s in graph
        ):
            raise EntraError(
                400,
                "invalid_scope",
                70011,
                f"The provided request must include a 'scope' input parameter. The provided "
                f"value for the input parameter 'scope' is not valid: {scope}.",
            )
        return " ".join(asked)

    def _device_code_token(self, form: Mapping[str, str]) -> dict[str, Any]:
        code = form.get("device_code", "")
        with self._lock:
            pending = self._device_codes.get(code)
        if pending is None or pending.client_id != form.get("client_id", ""):
            raise EntraError(
                400, "invalid_grant", 70000, "The provided value for 'device_code' is not valid."
            )
        if pending.expires <= time.time():
            raise EntraError(400, "expired_token", 70020, "The provided code has expired.")
        if pending.user is None:
            raise EntraError(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        with self._lock:
            del self._device_codes[code]
        grant = _Refresh(pending.client_id, pending.scope, pending.user, pending.user_id)
        return self._delegated(grant, form)

    def _authorization_code(
        self, form: Mapping[str, str], client_id: str, secret: str
    ) -> dict[str, Any]:
        self._require_client(client_id)
        if not secret:
            raise EntraError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        self._require_secret(secret)
        presented = form.get("code", "")
        with self._lock:
            code = self._auth_codes.pop(presented, None)
            redeemed = presented in self._redeemed
            if code is not None:
                self._redeemed.add(presented)
        if code is None and redeemed:
            raise EntraError(
                400,
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid "
                "code or use an existing refresh token.",
            )
        if code is None or code.client_id != client_id:
            raise EntraError(
                400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
            )
        if code.expires <= time.time():
            raise EntraError(
                400,
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to "
                "inactivity. Send a new interactive authorization request for this user and "
                "resource.",
            )
        if form.get("redirect_uri", "") != code.redirect_uri:
            raise EntraError(
                400,
                "invalid_grant",
                70000,
                "The provided value for the 'redirect_uri' is not valid. The value must exactly "
                "match the redirect URI used to obtain the authorization code.",
            )
        if code.challenge is not None and not secrets.compare_digest(
            _challenge(form.get("code_verifier", ""), code.method), code.challenge
        ):
            raise EntraError(
                400,
                "invalid_grant",
                50148,
                "The code_verifier does not match the code_challenge supplied in the "
                "authorization request for PKCE.",
            )
        grant = _Refresh(code.client_id, code.scope, code.user, code.user_id)
        scopes = set(code.scope.split())
        answer: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(sorted(scopes - {"openid", "offline_access"})),
            "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME,
            "access_token": self._issue(grant),
        }
        if "offline_access" in scopes:
            refresh = secrets.token_urlsafe(48)
            with self._lock:
                self._refresh_tokens[refresh] = grant
            answer["refresh_token"] = refresh
        if "openid" in scopes:
            answer["id_token"] = self._sign_in_id_token(code, scopes)
        if form.get("client_info") == "1":
            answer["client_info"] = _segment({"uid": code.user_id, "utid": self.tenant})
        return answer

    def _issuer_root(self) -> str:
        return str(getattr(self._request, "root", f"https://{LOGIN_HOST}"))

    def _sign_in_id_token(self, code: _AuthCode, scopes: set[str]) -> str:
        now = int(time.time())
        pairwise = hashlib.sha256(f"{code.client_id}:{code.user_id}".encode()).digest()
        claims: dict[str, Any] = {
            "aud": code.client_id,
            "iss": f"{self._issuer_root()}/{self.tenant}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "name": code.user,
            "oid": code.user_id,
            "preferred_username": code.user,
            "sub": _b64(pairwise),
            "tid": self.tenant,
            "uti": secrets.token_urlsafe(16),
            "ver": "2.0",
        }
        if code.nonce is not None:
            claims["nonce"] = code.nonce
        if "email" in scopes:
            claims["email"] = code.user
        with self._lock:
            overrides, self._id_token_overrides = self._id_token_overrides, {}
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        header = {"typ": "JWT", "alg": "RS256", "kid": "emulator"}
        return ".".join([_segment(header), _segment(claims), _b64(secrets.token_bytes(64))])

    def _refresh_token(self, form: Mapping[str, str]) -> dict[str, Any]:
        with self._lock:
            grant = self._refresh_tokens.pop(form.get("refresh_token", ""), None)
        if grant is None or grant.client_id != form.get("client_id", ""):
            raise EntraError(
                400,
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is "
                "needed. The user might have changed or reset their password.",
            )
        self._require_client(grant.client_id)
        return self._delegated(grant, form)

    def _delegated(self, grant: _Refresh, form: Mapping[str, str]) -> dict[str, Any]:
        refresh = secrets.token_urlsafe(48)
        with self._lock:
            self._refresh_tokens[refresh] = grant
        now = int(time.time())
        id_claims = {
            "aud": grant.client_id,
            "iss": f"{self._issuer_root()}/{self.tenant}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "name": grant.user,
            "oid": grant.user_id,
            "preferred_username": grant.user,
            "sub": grant.user_id,
            "tid": self.tenant,
            "ver": "2.0",
        }
        header = {"typ": "JWT", "alg": "RS256", "kid": "emulator"}
        answer: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": grant.scope,
            "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME,
            "access_token": self._issue(grant),
            "refresh_token": refresh,
            "id_token": ".".join(
                [_segment(header), _segment(id_claims), _b64(secrets.token_bytes(64))]
            ),
        }
        if form.get("client_info") == "1":
            answer["client_info"] = _segment({"uid": grant.user_id, "utid": self.tenant})
        return answer

    def _require_tenant(self, tenant: str) -> None:
        if tenant.casefold() != self.tenant.casefold():
            raise EntraError(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )

    def _issue(self, delegated: _Refresh | None = None) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": "emulator"}
        claims: dict[str, Any] = {
            "aud": GRAPH_RESOURCE,
            "iss": f"https://sts.windows.net/{self.tenant}/",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "app_displayname": "syncd",
            "appid": self.client_id,
            "idtyp": "app",
            "oid": self.service_principal_id,
            "roles": sorted(self.roles),
            "sub": self.service_principal_id,
            "tid": self.tenant,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
        }
        user = None
        roles = self.roles
        if delegated is not None:
            del claims["roles"]
            roles = frozenset()
            claims.update(
                idtyp="user",
                oid=delegated.user_id,
                sub=delegated.user_id,
                scp="Calendars.ReadWrite",
                upn=delegated.user,
            )
            user = delegated.user
        token = ".".join([_segment(header), _segment(claims), _b64(secrets.token_bytes(64))])
        with self._lock:
            self._grants[token] = Grant(token, time.time() + TOKEN_LIFETIME, user, roles)
        return token


def _redirect(uri: str, **params: str) -> str:
    return uri + ("&" if "?" in uri else "?") + urlencode(params)


def _challenge(verifier: str, method: str) -> str:
    if method == "S256":
        return _b64(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
    return verifier


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def _client(form: Mapping[str, str], authorization: str | None) -> tuple[str, str]:
    """client_id and secret from the form (client_secret_post) or HTTP Basic."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip()).decode("utf-8")
        except ValueError:
            decoded = ""
        user, _, password = decoded.partition(":")
        parsed = parse_qs(f"u={user}&p={password}")
        return (parsed.get("u") or [""])[0], (parsed.get("p") or [""])[0]
    return form.get("client_id", ""), form.get("client_secret", "")


def _unauthenticated(message: str) -> GraphError:
    return GraphError(
        401, "InvalidAuthenticationToken", message, {"WWW-Authenticate": _WWW_AUTHENTICATE}
    )
