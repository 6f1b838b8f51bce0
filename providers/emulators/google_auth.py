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
* A "Web application" client (``web_client_config``) signs people in: its
  redirect URIs are the ones registered with it (exactly, any scheme), where
  the installed-app client takes loopback addresses only. A code granted
  with the ``openid`` scope is exchanged for an ``id_token`` too, as Google's
  sign-in issues it: RS256 under a key of its own (``kid`` in the header),
  ``iss`` https://accounts.google.com, ``azp`` and ``aud`` the client id,
  ``sub`` a stable numeric id, ``email`` and ``email_verified`` (with the
  ``email`` scope), ``at_hash``, the request's ``nonce``, ``iat`` and
  ``exp`` an hour later. ``GET /oauth2/v1/certs`` (``{kid: PEM certificate}``)
  and ``GET /oauth2/v3/certs`` (a JWK set) publish that key, as Google does.
  ``tamper_next_id_token(**claims)`` changes the claims of the next one, for
  tests of a client's checks (another audience, another nonce, unverified).
* Bearer tokens on API calls are resolved to one user and their scopes.

``revoke(user)`` is the user (or an admin) withdrawing the grant: every token
request for them is ``invalid_grant`` "Token has been expired or revoked.",
and their outstanding access tokens are refused with 401 (google-auth then
refreshes, and the refresh fails). A later consent through the auth endpoint
grants anew; refresh tokens from before the revocation stay dead.

Choices where Google documents nothing exact: an unknown ``iss`` is
``invalid_grant`` "Invalid grant: account not found"; a jwt-bearer request
without a scope is ``invalid_scope``; API calls check scopes (read needs one of
the calendar or calendar.events scopes, readonly or not; patch a read-write one;
the directory one of the admin.directory.user scopes) and answer 403
``insufficientPermissions`` otherwise. With ``delegated_scopes`` set (the
domain-wide delegation an admin configured), a delegated token asking for
any other scope is 401 ``unauthorized_client``, as Google answers it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from .google_errors import ApiError, OAuthError

__all__ = ["DIRECTORY_SCOPES", "READ_SCOPES", "WRITE_SCOPES", "Authority", "Grant"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_SCOPE_ROOT = "https://www.googleapis.com/auth/"
WRITE_SCOPES = frozenset({_SCOPE_ROOT + "calendar", _SCOPE_ROOT + "calendar.events"})
READ_SCOPES = WRITE_SCOPES | {
    _SCOPE_ROOT + "calendar.readonly",
    _SCOPE_ROOT + "calendar.events.readonly",
}
#: The Admin SDK's users.list accepts either (users.list's documented scopes).
DIRECTORY_SCOPES = frozenset(
    {_SCOPE_ROOT + "admin.directory.user", _SCOPE_ROOT + "admin.directory.user.readonly"}
)
_UNDELEGATED = (
    "Client is unauthorized to retrieve access tokens using this method, or client not "
    "authorized for any of the scopes requested."
)
# google-auth signs every assertion for Google's token endpoint whatever token_uri
# it posts to, and Google also accepts its older token URIs as audience.
GOOGLE_TOKEN_AUDIENCES = (
    "https://oauth2.googleapis.com/token",
    "https://www.googleapis.com/oauth2/v4/token",
    "https://accounts.google.com/o/oauth2/token",
)
TOKEN_LIFETIME = 3600
ID_TOKEN_ISSUER = "https://accounts.google.com"
_EMAIL_SCOPES = frozenset({"email", _SCOPE_ROOT + "userinfo.email"})
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
    nonce: str | None = None


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
        self.web_client_id = f"{secrets.randbelow(10**12):012d}-web.apps.googleusercontent.com"
        self.web_client_secret = "GOCSPX-" + secrets.token_urlsafe(21)
        self._web_redirect_uris: set[str] = set()
        self.id_key_id = secrets.token_hex(20)
        self._id_key: rsa.RSAPrivateKey | None = None
        self._id_certificate: bytes | None = None
        self._id_token_overrides: dict[str, Any] = {}
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
        #: The scopes the Workspace admin delegated to the service account
        #: (Admin console, domain-wide delegation); None: whatever it asks for.
        self.delegated_scopes: frozenset[str] | None = None

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

    def web_client_config(self, redirect_uris: Iterable[str]) -> dict[str, Any]:
        """The "Web application" client's JSON, its redirect URIs registered with it."""
        uris = list(redirect_uris)
        with self._lock:
            self._web_redirect_uris.update(uris)
        return {
            "web": {
                "client_id": self.web_client_id,
                "client_secret": self.web_client_secret,
                "project_id": self.project_id,
                "auth_uri": self.auth_uri,
                "token_uri": self.token_uri,
                "auth_provider_x509_cert_url": self.token_uri.removesuffix("token")
                + "oauth2/v1/certs",
                "redirect_uris": uris,
            }
        }

    def tamper_next_id_token(self, **claims: Any) -> None:
        """The next ID token carries these claims instead (a value of None removes one)."""
        with self._lock:
            self._id_token_overrides = dict(claims)

    # ------------------------------------------------------------ ID tokens

    def _signing_key(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._id_key is None:
                self._id_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._id_key

    def certs_pem(self) -> dict[str, str]:
        """``/oauth2/v1/certs``: each signing key as a self-signed X.509 certificate."""
        key = self._signing_key()
        with self._lock:
            if self._id_certificate is None:
                name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.google.com")])
                now = datetime.now(UTC)
                certificate = (
                    x509.CertificateBuilder()
                    .subject_name(name)
                    .issuer_name(name)
                    .public_key(key.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(now - timedelta(days=1))
                    .not_valid_after(now + timedelta(days=14))
                    .sign(key, hashes.SHA256())
                )
                self._id_certificate = certificate.public_bytes(serialization.Encoding.PEM)
            return {self.id_key_id: self._id_certificate.decode("ascii")}

    def certs_jwks(self) -> dict[str, Any]:
        """``/oauth2/v3/certs``: the same keys as a JWK set."""
        numbers = self._signing_key().public_key().public_numbers()

        def unsigned(value: int) -> str:
            return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        key = {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.id_key_id,
            "n": unsigned(numbers.n),
            "e": unsigned(numbers.e),
        }
        return {"keys": [key]}

    def _id_token(self, code: _Code, access_token: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ID_TOKEN_ISSUER,
            "azp": code.client_id,
            "aud": code.client_id,
            "sub": _subject(code.user),
            "at_hash": _b64(hashlib.sha256(access_token.encode("ascii")).digest()[:16]),
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
        }
        if code.scopes & _EMAIL_SCOPES:
            claims.update(email=code.user, email_verified=True)
        if code.nonce is not None:
            claims["nonce"] = code.nonce
        overrides, self._id_token_overrides = self._id_token_overrides, {}
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        header = {"alg": "RS256", "kid": self.id_key_id, "typ": "JWT"}
        signing_input = f"{_segment(header)}.{_segment(claims)}".encode("ascii")
        key = self._id_key
        assert key is not None, "the key is made before any code is granted"
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode('ascii')}.{_b64(signature)}"

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

    @staticmethod
    def require_directory_scope(grant: Grant) -> None:
        if not grant.scopes & DIRECTORY_SCOPES:
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
            delegated = self.delegated_scopes
            if delegated is not None and not scopes <= delegated:
                raise OAuthError(401, "unauthorized_client", _UNDELEGATED)
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
            answer = self._issue(code.user, code.scopes, client_id, refresh=True)
            if "openid" in code.scopes:
                answer["id_token"] = self._id_token(code, answer["access_token"])
            return answer

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
        known = {
            self.oauth_client_id: self.oauth_client_secret,
            self.web_client_id: self.web_client_secret,
        }
        if client_id not in known or not secrets.compare_digest(secret, known[client_id]):
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

        client_id = one("client_id")
        if client_id not in (self.oauth_client_id, self.web_client_id):
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        redirect_uri = one("redirect_uri")
        if client_id == self.web_client_id:
            with self._lock:
                registered = redirect_uri in self._web_redirect_uris
            if not registered:
                raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
        else:
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
        if "openid" in scopes:
            self._signing_key()  # made now, outside the lock the exchange holds
        code = "4/emu-" + secrets.token_urlsafe(32)
        with self._lock:
            self._revoked.discard(user.casefold())
            self._codes[code] = _Code(
                user=user,
                client_id=client_id,
                redirect_uri=redirect_uri,
                scopes=scopes,
                challenge=challenge,
                method=method,
                expires=time.time() + _CODE_LIFETIME,
                nonce=one("nonce") or None,
            )
        return _redirect(redirect_uri, code=code, scope=" ".join(sorted(scopes)), **extra)


def _redirect(uri: str, **params: str) -> str:
    return uri + ("&" if "?" in uri else "?") + urlencode(params)


def _challenge(verifier: str, method: str) -> str:
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return verifier


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _segment(value: Mapping[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def _subject(user: str) -> str:
    """A stable 21-digit account id per address, shaped like Google's ``sub``."""
    digest = hashlib.sha256(user.casefold().encode("utf-8")).digest()
    return str(100_000_000_000_000_000_000 + int.from_bytes(digest[:8], "big"))


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
