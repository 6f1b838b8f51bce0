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
the ``Calendars.ReadWrite`` role, a random signature) and live 3599 s, so a
client that decodes them sees what it would in production; API calls
check that the bearer token is one issued here and not expired or expired by
``expire_tokens``. Withdrawing consent leaves outstanding tokens working
until they expire, as with the real service.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .graph_errors import EntraError, GraphError

__all__ = ["LOGIN_HOST", "Authority", "Grant"]

LOGIN_HOST = "login.microsoftonline.com"
GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
TOKEN_LIFETIME = 3599
_SCOPES = {f"{GRAPH_RESOURCE}/.default", f"{GRAPH_APP_ID}/.default"}
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


class Authority:
    """One tenant with one app registration whose secret the token endpoint checks."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.client_id = str(uuid.uuid4())
        self.client_secret = secrets.token_urlsafe(30)
        self.service_principal_id = str(uuid.uuid4())
        self._lock = threading.Lock()
        self._grants: dict[str, Grant] = {}
        self._consented = True

    # ------------------------------------------------------------- endpoints

    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        self._require_tenant(tenant)
        login = f"https://{LOGIN_HOST}/{self.tenant}"
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
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
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
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def instance_discovery(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        """The alias list msal caches per cloud (and the tenant's discovery document)."""
        endpoint = (query.get("authorization_endpoint") or [""])[-1]
        parts = urlsplit(endpoint).path.split("/")
        tenant = parts[1] if len(parts) > 1 and parts[1] else "common"
        return {
            "tenant_discovery_endpoint": (
                f"https://{LOGIN_HOST}/{tenant}/v2.0/.well-known/openid-configuration"
            ),
            "api-version": "1.1",
            "metadata": [
                {
                    "preferred_network": LOGIN_HOST,
                    "preferred_cache": "login.windows.net",
                    "aliases": [
                        LOGIN_HOST,
                        "login.windows.net",
                        "login.microsoft.com",
                        "sts.windows.net",
                    ],
                }
            ],
        }

    def token(
        self, tenant: str, form: Mapping[str, str], authorization: str | None
    ) -> dict[str, Any]:
        """A client-credentials token for Graph, or the EntraError the real service answers."""
        self._require_tenant(tenant)
        client_id, secret = _client(form, authorization)
        grant_type = form.get("grant_type", "")
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
        if not secrets.compare_digest(secret, self.client_secret):
            raise EntraError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                f"the client secret value, not the client secret ID, for a secret added to app "
                f"'{self.client_id}'.",
            )
        scope = form.get("scope", "")
        if scope.strip() not in _SCOPES:
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
            self._grants = {token: Grant(token, time.time() - 1) for token in self._grants}

    # ------------------------------------------------------------ internals

    def _require_tenant(self, tenant: str) -> None:
        if tenant.casefold() != self.tenant.casefold():
            raise EntraError(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )

    def _issue(self) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": "emulator"}
        claims = {
            "aud": GRAPH_RESOURCE,
            "iss": f"https://sts.windows.net/{self.tenant}/",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "app_displayname": "syncd",
            "appid": self.client_id,
            "idtyp": "app",
            "oid": self.service_principal_id,
            "roles": ["Calendars.ReadWrite"],
            "sub": self.service_principal_id,
            "tid": self.tenant,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
        }
        token = ".".join([_segment(header), _segment(claims), _b64(secrets.token_bytes(64))])
        with self._lock:
            self._grants[token] = Grant(token, time.time() + TOKEN_LIFETIME)
        return token


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
