"""Sign-in with Microsoft for the agenda pages: msal's auth-code flow, claims checked here.

msal checks only the nonce of an ID token; issuer, tenant, audience and the
token's times are the caller's to check, so they are checked below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msal  # type: ignore[import-untyped]

from providers.microsoft import tokens
from providers.microsoft.clouds import endpoints
from providers.signin import SignInFailed, check_times, provider_error

#: msal adds ``openid`` and ``profile`` (``preferred_username``); no API access at all.
SCOPES = ("email",)


class MicrosoftSignInFlow:
    """``client``: an Entra ID web app registration (tenant, client_id, client_secret,
    cloud, authority, ca_file).

    ``form_post``: Microsoft posts its answer (the callback's cookie must then
    be SameSite=None, which needs Secure).
    """

    def __init__(
        self,
        client: Any,
        redirect_uri: str,
        *,
        form_post: bool,
        now: Callable[[], float],
    ) -> None:
        self._client = client
        self._redirect_uri = redirect_uri
        self._form_post = form_post
        self._http_client = tokens.login_session(client.ca_file)
        self._now = now
        where = endpoints(client.cloud, client.tenant, client.authority)
        self._authority = where.authority

    def _msal(self) -> Any:
        """A new msal app per sign-in: it keeps no tokens between people."""
        try:
            return msal.ConfidentialClientApplication(
                self._client.client_id,
                client_credential=self._client.client_secret,
                authority=self._authority,
                http_client=self._http_client,
                exclude_scopes=["offline_access"],
                # The cloud comes from the config: nothing to look up.
                instance_discovery=False,
            )
        except ValueError:
            # msal's word for an authority that answered 4xx (unknown tenant) or non-JSON.
            raise SignInFailed("Microsoft does not know the configured tenant") from None
        except Exception as error:
            raise SignInFailed(f"Microsoft's login service: {type(error).__name__}") from None

    def start(self) -> tuple[str, dict[str, Any]]:
        flow = self._msal().initiate_auth_code_flow(
            list(SCOPES),
            redirect_uri=self._redirect_uri,
            prompt="select_account",
            response_mode="form_post" if self._form_post else None,
        )
        url = str(flow.pop("auth_uri"))
        return url, {"state": flow["state"], "msal": flow}

    def finish(self, flow: Mapping[str, Any], query: Mapping[str, str]) -> object:
        provider_error("Microsoft", query)
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
        tenant = str(self._client.tenant).casefold()
        if str(claims.get("iss", "")).casefold() != f"{self._authority}/v2.0".casefold():
            raise SignInFailed("Microsoft's ID token has another issuer")
        if str(claims.get("tid", "")).casefold() != tenant:
            raise SignInFailed("Microsoft's ID token is from another tenant")
        if claims.get("aud") != self._client.client_id:
            raise SignInFailed("Microsoft's ID token is for another app")
        check_times(claims, self._now(), "Microsoft")
        preferred = claims.get("preferred_username")
        if isinstance(preferred, str) and "@" in preferred:
            return preferred
        return claims.get("email")
