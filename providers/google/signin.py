"""Sign-in with Google for the agenda pages: the authorization-code flow and its ID token."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2 import id_token
from google_auth_oauthlib.flow import Flow
from oauthlib.oauth2.rfc6749.errors import OAuth2Error  # type: ignore[import-untyped]
from requests import RequestException

from providers.signin import CLOCK_SKEW, SignInFailed, check_nonce, provider_error

#: ``email`` is Google's short name for this scope; asking for the long name
#: keeps oauthlib from refusing the answer as "scope has changed".
SCOPES = ("openid", "https://www.googleapis.com/auth/userinfo.email")
ISSUERS = ("https://accounts.google.com", "accounts.google.com")


class GoogleSignInFlow:
    """``client``: a "Web application" OAuth client (client_id, client_secret, auth_uri,
    token_uri, certs_url)."""

    def __init__(self, client: Any, redirect_uri: str) -> None:
        self._client = client
        self._redirect_uri = redirect_uri

    def _flow(self, **kwargs: Any) -> Any:
        config = {
            "web": {
                "client_id": self._client.client_id,
                "client_secret": self._client.client_secret,
                "auth_uri": self._client.auth_uri,
                "token_uri": self._client.token_uri,
            }
        }
        return Flow.from_client_config(
            config, scopes=list(SCOPES), redirect_uri=self._redirect_uri, **kwargs
        )

    def start(self) -> tuple[str, dict[str, Any]]:
        nonce = secrets.token_urlsafe(32)
        flow = self._flow(state=secrets.token_urlsafe(32))
        url, state = flow.authorization_url(
            access_type="online", prompt="select_account", nonce=nonce
        )
        return url, {"state": state, "nonce": nonce, "verifier": flow.code_verifier}

    def finish(self, flow: Mapping[str, Any], query: Mapping[str, str]) -> object:
        provider_error("Google", query)
        code = query.get("code", "")
        if not code:
            raise SignInFailed("Google sent no authorization code")
        exchange = self._flow(state=flow["state"], code_verifier=flow.get("verifier"))
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
                audience=self._client.client_id,
                certs_url=self._client.certs_url,
                clock_skew_in_seconds=CLOCK_SKEW,
            )
        except Exception as error:  # whatever fails here, the token is not believed
            raise SignInFailed(
                f"Google's ID token did not verify ({type(error).__name__})"
            ) from None
        if claims.get("iss") not in ISSUERS:
            raise SignInFailed("Google's ID token has another issuer")
        check_nonce(flow, claims.get("nonce"), "Google")
        if claims.get("email_verified") not in (True, "true"):
            raise SignInFailed("Google has not verified this account's address")
        return claims.get("email")
