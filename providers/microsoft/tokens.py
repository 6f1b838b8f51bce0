"""Graph tokens for one person's own grant, the device-code consent, and msal's transport.

A delegated grant lives in an msal token cache that syncd keeps sealed
(``Sealed``): msal answers from it while the access token lasts, redeems the
refresh token otherwise, and the cache is sealed again whenever that changed
it (refresh tokens rotate).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msal  # type: ignore[import-untyped]
import requests

from providers.base import AuthRevoked, ProviderError, Sealed, SetupError, Transient
from providers.microsoft.graph import error_for

__all__ = [
    "DelegatedTokenSource",
    "authorize",
    "login_session",
    "msal_cache",
    "save_msal_cache",
    "tls_context",
]


class _Trusting(requests.Session):
    """A session that checks certificates against one CA file, whatever the environment says.

    requests lets ``REQUESTS_CA_BUNDLE`` override ``Session.verify``; an
    admin who configured ``ca_file`` meant that file. Proxy variables still
    apply.
    """

    def __init__(self, ca_file: str) -> None:
        super().__init__()
        self._ca_file = ca_file

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        settings: dict[str, Any] = super().merge_environment_settings(
            url, proxies, stream, verify, cert
        )
        settings["verify"] = self._ca_file
        return settings


def login_session(ca_file: str) -> requests.Session | None:
    """msal's ``http_client``: its own default, or one trusting ``ca_file``."""
    return _Trusting(ca_file) if ca_file else None


def tls_context(ca_file: str) -> ssl.SSLContext | bool:
    """httpx's ``verify`` for Graph: the system's CAs, or ``ca_file`` alone."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


def msal_cache(sealed: Sealed) -> Any:
    """The sealed msal token cache (a ``msal.SerializableTokenCache``), empty if none yet."""
    cache = msal.SerializableTokenCache()
    raw = sealed.load()
    if raw is None:
        return cache
    try:
        state = json.loads(raw)
    except ValueError:
        state = None
    if not isinstance(state, dict):
        raise SetupError(f"{sealed.path}: not an msal token cache saved by syncd")
    cache.deserialize(raw.decode("utf-8"))
    return cache


def save_msal_cache(sealed: Sealed, cache: Any) -> bool:
    """Seal the cache again if msal changed it (a refresh rotates tokens); True if written."""
    if not cache.has_state_changed:
        return False
    sealed.save(str(cache.serialize()).encode("utf-8"))
    cache.has_state_changed = False
    return True


def _problem(result: Any) -> str:
    """``error (first line of the description)`` of an msal error dict: no token in it."""
    if not isinstance(result, Mapping):
        return "no answer"
    error = str(result.get("error") or "no token in the answer")
    lines = str(result.get("error_description") or "").strip().splitlines()
    return error + (f" ({lines[0]})" if lines else "")


def _public_client(authority: str, client_id: str, http_client: Any, cache: Any) -> Any:
    return msal.PublicClientApplication(
        client_id,
        authority=authority,
        http_client=http_client,
        token_cache=cache,
        # The cloud comes from the config: nothing to look up.
        instance_discovery=False,
    )


class DelegatedTokenSource:
    """One person's Graph tokens from their sealed msal cache (single-user mode).

    A cache without an account, or a refresh the identity platform refuses
    (``invalid_grant``: revoked, password reset), is ``AuthRevoked``: the
    person has to run ``syncd auth`` again.
    """

    def __init__(
        self,
        sealed: Sealed,
        authority: str,
        client_id: str,
        *,
        account_name: str,
        scopes: Sequence[str],
        http_client: Any = None,
    ) -> None:
        self._sealed = sealed
        self._authority = authority
        self._client_id = client_id
        self._account_name = account_name
        self._scopes = list(scopes)
        self._http_client = http_client
        self._cache = msal_cache(sealed)
        self._app: Any = None
        self._lock = threading.Lock()

    def _again(self) -> str:
        return f"run `syncd auth --account {self._account_name}` again"

    def _application(self) -> Any:
        if self._app is None:
            try:
                self._app = _public_client(
                    self._authority, self._client_id, self._http_client, self._cache
                )
            except ValueError as error:
                raise AuthRevoked(f"authority {self._authority}: {error}") from error
            except Exception as error:
                raise error_for(error) from error
        return self._app

    def _acquire(self, force: bool) -> str:
        with self._lock:
            app = self._application()
            accounts = app.get_accounts()
            if not accounts:
                raise AuthRevoked(f"{self._sealed.path}: no signed-in account; {self._again()}")
            try:
                result = app.acquire_token_silent_with_error(
                    self._scopes, account=accounts[0], force_refresh=force
                )
            except ValueError as error:  # a non-JSON token response
                raise Transient(f"token endpoint: {error}") from error
            except Exception as error:
                raise error_for(error) from error
            finally:
                save_msal_cache(self._sealed, self._cache)
        if result is None:
            raise AuthRevoked(f"{self._sealed.path}: no usable grant in the cache; {self._again()}")
        if not isinstance(result, dict) or "access_token" not in result:
            failure: ProviderError = error_for(
                result if isinstance(result, dict) else {"error": "no_token"}
            )
            if isinstance(failure, AuthRevoked):
                raise AuthRevoked(f"{failure}; {self._again()}")
            raise failure
        return str(result["access_token"])

    def __call__(self) -> str:
        return self._acquire(False)

    def refresh(self) -> str:
        """Graph refused the cached access token: redeem the refresh token now."""
        return self._acquire(True)


def authorize(
    authority: str,
    client_id: str,
    scopes: Sequence[str],
    show: Callable[[str], None],
    *,
    http_client: Any = None,
    cache: Any,
) -> str:
    """One person's delegated grant through the device authorization grant.

    ``show`` gets msal's instruction (the page and the code to enter there)
    and must return at once; msal then polls the token endpoint at the
    interval the identity platform asked for until the person has signed in,
    declined, or the code ran out. The tokens land in ``cache`` (seal it with
    ``save_msal_cache``); other people's accounts are dropped from it, so the
    cache holds exactly one account. Returns the signed-in username.
    """
    try:
        app = _public_client(authority, client_id, http_client, cache)
        flow = app.initiate_device_flow(scopes=list(scopes))
    except ValueError as error:
        # msal's word for an authority that answered 4xx (unknown tenant) or non-JSON.
        first = (str(error).splitlines() or [""])[0]
        raise SetupError(f"Microsoft sign-in could not start: {authority}: {first}") from None
    except Exception as error:
        raise SetupError(
            f"Microsoft sign-in could not start: {type(error).__name__} talking to {authority}"
        ) from None
    if not isinstance(flow, dict) or "user_code" not in flow:
        raise SetupError(f"Microsoft sign-in could not start: {_problem(flow)}")
    show(str(flow.get("message") or f"enter {flow['user_code']} at {flow['verification_uri']}"))
    try:
        result = app.acquire_token_by_device_flow(flow)
    except Exception as error:
        raise SetupError(
            f"Microsoft sign-in failed: {type(error).__name__} talking to {authority}"
        ) from None
    if not isinstance(result, dict) or "access_token" not in result:
        raise SetupError(f"Microsoft sign-in failed: {_problem(result)}")
    claims = result.get("id_token_claims") or {}
    username = str(claims.get("preferred_username") or claims.get("upn") or "")
    accounts = app.get_accounts()
    mine = [a for a in accounts if username and a.get("username") == username]
    if not mine or "refresh_token" not in result:
        raise SetupError(
            "Microsoft sign-in returned no account or no refresh token, so the grant could not "
            "be kept; check that the app registration allows public client flows"
        )
    for account in accounts:
        if account not in mine:
            app.remove_account(account)
    return username
