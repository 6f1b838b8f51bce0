"""Google's OAuth 2.0 endpoints as far as google-auth and google-auth-oauthlib use them.

* ``POST /token`` with the jwt-bearer grant (a service account acting for a
  user through domain-wide delegation): the assertion's RS256 signature is
  checked against the emulator's service-account key, ``iss``, ``aud``,
  ``iat``/``exp`` and ``sub`` as Google checks them, and the answers for bad
  ones are Google's (``invalid_grant`` with its ``error_description``).
  ``aud`` must be Google's token endpoint (google-auth always signs for
  ``https://oauth2.googleapis.com/token``, whatever ``token_uri`` it posts
  to) or the emulator's own ``token_uri``.
* ``GET /o/oauth2/auth`` consents at once, as ``login_hint`` or the first
  user, and redirects to the loopback ``redirect_uri`` with ``code`` and
  ``state``; ``POST /token`` exchanges the code (PKCE checked when the
  client sent a challenge) and later refresh tokens.
* Bearer tokens on API calls are resolved to one user and their scopes.

``revoke(user)`` is the user (or an admin) withdrawing the grant: every token
request for them is ``invalid_grant`` "Token has been expired or revoked.",
and their outstanding access tokens are refused with 401 (google-auth then
refreshes, and the refresh fails). A later consent through the auth endpoint
grants anew; refresh tokens from before the revocation stay dead.

Choices where Google documents nothing exact: an unknown ``iss`` is
``invalid_grant`` "Invalid grant: account not found"; a jwt-bearer request
without a scope is ``invalid_scope``; API calls check scopes (read needs one of
the calendar or calendar.events scopes, readonly or not; patch a read-write one)
and answer 403 ``insufficientPermissions`` otherwise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .google_errors import ApiError, OAuthError

__all__ = ["READ_SCOPES", "WRITE_SCOPES", "Authority", "Grant"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_SCOPE_ROOT = "https://www.googleapis.com/auth/"
WRITE_SCOPES = frozenset({_SCOPE_ROOT + "calendar", _SCOPE_ROOT + "calendar.events"})
READ_SCOPES = WRITE_SCOPES | {
    _SCOPE_ROOT + "calendar.readonly",
    _SCOPE_ROOT + "calendar.events.readonly",
}
# google-auth signs every assertion for Google's token endpoint whatever token_uri
# it posts to, and Google also accepts its older token URIs as audience.
GOOGLE_TOKEN_AUDIENCES = (
    "https://oauth2.googleapis.com/token",
    "https://www.googleapis.com/oauth2/v4/token",
    "https://accounts.google.com/o/oauth2/token",
)
TOKEN_LIFETIME = 3600
_MAX_ASSERTION_LIFETIME = 3600
_CLOCK_SKEW = 300
_CODE_LIFETIME = 600
_REVOKED = "Token has been expired or revoked."
_BAD_TIMES = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
    "timeframe. Check your iat and exp values in the JWT claim."
)


@dataclass(frozen=True)
class Grant:
    """What a token stands for: one user, some scopes, until a time, in one grant generation."""

    user: str
    scopes: frozenset[str]
    expires: float
    generation: int
    client_id: str = ""


@dataclass(frozen=True)
class _Code:
    user: str
    client_id: str
    redirect_uri: str
    scopes: frozenset[str]
    challenge: str | None
    method: str
    expires: float


class Authority:
    """Keys, clients and every token the emulator has issued."""

    def __init__(
        self,
        known_user: Callable[[str], str | None],
        first_user: Callable[[], str | None],
        *,
        project_id: str = "syncd-emulator",
    ) -> None:
        self.project_id = project_id
        self.client_email = f"syncd@{project_id}.iam.gserviceaccount.com"
        self.service_client_id = str(100_000_000_000_000_000_000 + secrets.randbelow(10**20))
        self.key_id = secrets.token_hex(20)
        self.oauth_client_id = (
            f"{secrets.randbelow(10**12):012d}-emulator.apps.googleusercontent.com"
        )
        self.oauth_client_secret = "GOCSPX-" + secrets.token_urlsafe(21)
        self.token_uri = ""
        self.auth_uri = ""
        self._known_user = known_user
        self._first_user = first_user
        self._key: rsa.RSAPrivateKey | None = None
        self._lock = threading.Lock()
        self._access: dict[str, Grant] = {}
        self._refresh: dict[str, Grant] = {}
        self._codes: dict[str, _Code] = {}
        self._revoked: set[str] = set()
        self._generation: dict[str, int] = {}

    # --------------------------------------------------------------- credentials

    def private_key(self) -> rsa.RSAPrivateKey:
        """Generated on first use, so world-only tests never pay for it."""
        with self._lock:
            if self._key is None:
                self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._key

    def service_account_info(self, base_url: str) -> dict[str, str]:
        pem = self.private_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.key_id,
            "private_key": pem.decode("ascii"),
            "client_email": self.client_email,
            "client_id": self.service_client_id,
            "auth_uri": self.auth_uri,
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": base_url + "oauth2/v1/certs",
            "client_x509_cert_url": base_url + "robot/v1/metadata/x509/" + self.client_email,
            "universe_domain": "googleapis.com",
        }

    def client_config(self) -> dict[str, Any]:
        return {
            "installed": {
                "client_id": self.oauth_client_id,
                "client_secret": self.oauth_client_secret,
                "project_id": self.project_id,
                "auth_uri": self.auth_uri,
                "token_uri": self.token_uri,
                "redirect_uris": ["http://localhost"],
            }
        }

    def revoke(self, user: str) -> None:
        folded = user.casefold()
        with self._lock:
            self._revoked.add(folded)
            self._generation[folded] = self._generation.get(folded, 0) + 1

    def expire_tokens(self, user: str | None = None) -> None:
        """Age access tokens (one user's or all) so the next call needs a refresh."""
        with self._lock:
            for token, grant in list(self._access.items()):
                if user is None or grant.user.casefold() == user.casefold():
                    self._access[token] = Grant(
                        grant.user, grant.scopes, 0.0, grant.generation, grant.client_id
                    )

    # ------------------------------------------------------------- API requests

    def authenticate(self, authorization: str | None) -> Grant:
        """The grant behind an ``Authorization: Bearer`` header; 401 as Google words it."""
        scheme, _, token = (authorization or "").partition(" ")
        with self._lock:
            grant = self._access.get(token.strip()) if scheme.lower() == "bearer" else None
            if grant is None or grant.expires <= time.time() or not self._current(grant):
                raise ApiError(
                    401,
                    "authError",
                    location="Authorization",
                    location_type="header",
                    headers={
                        "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                        'error="invalid_token"'
                    },
                )
            return grant

    @staticmethod
    def require_scope(grant: Grant, write: bool) -> None:
        if not grant.scopes & (WRITE_SCOPES if write else READ_SCOPES):
            raise ApiError(403, "insufficientPermissions")

    # ---------------------------------------------------------- token endpoint

    def token(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        grant_type = form.get("grant_type", "")
        if grant_type == JWT_BEARER:
            return self._jwt_bearer(form.get("assertion", ""))
        if grant_type == "authorization_code":
            return self._exchange_code(form, authorization)
        if grant_type == "refresh_token":
            return self._refresh_grant(form, authorization)
        raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _jwt_bearer(self, assertion: str) -> dict[str, Any]:
        claims = self._verified_claims(assertion)
        now = time.time()
        issued, expires = claims.get("iat"), claims.get("exp")
        if (
            not isinstance(issued, int | float)
            or not isinstance(expires, int | float)
            or expires <= now
            or issued > now + _CLOCK_SKEW
            or expires - issued > _MAX_ASSERTION_LIFETIME
        ):
            raise OAuthError(400, "invalid_grant", _BAD_TIMES)
        if claims.get("iss") != self.client_email:
            raise OAuthError(400, "invalid_grant", "Invalid grant: account not found")
        if claims.get("aud") not in (*GOOGLE_TOKEN_AUDIENCES, self.token_uri):
            raise OAuthError(400, "invalid_grant", "Invalid JWT: Failed audience check.")
        scopes = frozenset(str(claims.get("scope") or "").split())
        if not scopes:
            raise OAuthError(
                400, "invalid_scope", "Invalid OAuth scope or ID token audience provided."
            )
        subject = claims.get("sub")
        if subject is None:
            user = self.client_email
        else:
            known = self._known_user(str(subject))
            if known is None:
                raise OAuthError(400, "invalid_grant", "Invalid email or User ID")
            user = known
        with self._lock:
            self._refuse_revoked(user)
            return self._issue(user, scopes, self.service_client_id, refresh=False)

    def _verified_claims(self, assertion: str) -> dict[str, Any]:
        parts = assertion.split(".")
        if len(parts) != 3:
            raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
        try:
            header = json.loads(_unb64(parts[0]))
            claims = json.loads(_unb64(parts[1]))
            signature = _unb64(parts[2])
        except (ValueError, binascii.Error):
            raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
        if header.get("alg") != "RS256" or header.get("kid", self.key_id) != self.key_id:
            raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
        try:
            self.private_key().public_key().verify(
                signature,
                f"{parts[0]}.{parts[1]}".encode("ascii"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, UnicodeEncodeError):
            raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.") from None
        return claims

    def _exchange_code(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        client_id = self._client(form, authorization)
        with self._lock:
            code = self._codes.pop(form.get("code", ""), None)
            if code is None or code.expires <= time.time() or code.client_id != client_id:
                raise OAuthError(400, "invalid_grant", "Malformed auth code.")
            if form.get("redirect_uri", "") != code.redirect_uri:
                raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
            if code.challenge is not None:
                verifier = form.get("code_verifier")
                if not verifier:
                    raise OAuthError(400, "invalid_grant", "Missing code verifier.")
                if _challenge(verifier, code.method) != code.challenge:
                    raise OAuthError(400, "invalid_grant", "Invalid code verifier.")
            self._refuse_revoked(code.user)
            return self._issue(code.user, code.scopes, client_id, refresh=True)

    def _refresh_grant(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        client_id = self._client(form, authorization)
        with self._lock:
            grant = self._refresh.get(form.get("refresh_token", ""))
            if grant is None or grant.client_id != client_id or not self._current(grant):
                raise OAuthError(400, "invalid_grant", _REVOKED)
            return self._issue(grant.user, grant.scopes, client_id, refresh=False)

    def _client(self, form: Mapping[str, str], authorization: str | None) -> str:
        """Client credentials from HTTP Basic (requests-oauthlib) or the form (google-auth)."""
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client_id = secret = ""
        if client_id != self.oauth_client_id or secret != self.oauth_client_secret:
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        return client_id

    def _issue(
        self, user: str, scopes: frozenset[str], client_id: str, *, refresh: bool
    ) -> dict[str, Any]:
        generation = self._generation.get(user.casefold(), 0)
        token = "ya29.emu-" + secrets.token_urlsafe(32)
        expires = time.time() + TOKEN_LIFETIME
        self._access[token] = Grant(user, scopes, expires, generation, client_id)
        answer: dict[str, Any] = {
            "access_token": token,
            "expires_in": TOKEN_LIFETIME,
            "scope": " ".join(sorted(scopes)),
            "token_type": "Bearer",
        }
        if refresh:
            refresh_token = "1//emu-" + secrets.token_urlsafe(32)
            self._refresh[refresh_token] = Grant(user, scopes, float("inf"), generation, client_id)
            answer["refresh_token"] = refresh_token
        return answer

    def _current(self, grant: Grant) -> bool:
        folded = grant.user.casefold()
        return folded not in self._revoked and grant.generation == self._generation.get(folded, 0)

    def _refuse_revoked(self, user: str) -> None:
        if user.casefold() in self._revoked:
            raise OAuthError(400, "invalid_grant", _REVOKED)

    # ------------------------------------------------------- consent endpoint

    def authorize(self, query: Mapping[str, list[str]]) -> str:
        """Consent at once and answer the redirect location (code and state on it)."""

        def one(name: str) -> str:
            values = query.get(name)
            return values[-1] if values else ""

        if one("client_id") != self.oauth_client_id:
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        redirect_uri = one("redirect_uri")
        target = urlsplit(redirect_uri)
        if target.scheme != "http" or target.hostname not in ("localhost", "127.0.0.1", "::1"):
            raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
        state = one("state")
        extra = {"state": state} if state else {}
        if one("response_type") != "code":
            return _redirect(redirect_uri, error="unsupported_response_type", **extra)
        hint = one("login_hint")
        user = (self._known_user(hint) if hint else None) or self._first_user()
        if user is None:
            return _redirect(redirect_uri, error="access_denied", **extra)
        scopes = frozenset(one("scope").split())
        challenge = one("code_challenge") or None
        method = one("code_challenge_method") or "plain"
        code = "4/emu-" + secrets.token_urlsafe(32)
        with self._lock:
            self._revoked.discard(user.casefold())
            self._codes[code] = _Code(
                user=user,
                client_id=self.oauth_client_id,
                redirect_uri=redirect_uri,
                scopes=scopes,
                challenge=challenge,
                method=method,
                expires=time.time() + _CODE_LIFETIME,
            )
        return _redirect(redirect_uri, code=code, scope=" ".join(sorted(scopes)), **extra)


def _redirect(uri: str, **params: str) -> str:
    return uri + ("&" if "?" in uri else "?") + urlencode(params)


def _challenge(verifier: str, method: str) -> str:
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return verifier


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
