"""Signing people in to the agenda pages with their Google or Microsoft account (OIDC).

Which person is looking is syncd's business (``syncd/web/oidc.py``: routes,
cookies, sessions); how one provider's authorization-code flow runs and
which ID-token claims it can be believed on is the provider's, so the
libraries that speak it (google-auth-oauthlib, msal) are used only in the
plugins. A flow is two calls: ``start`` gives the URL to send the browser to
and the state to keep (sealed in a cookie) until the callback; ``finish``
redeems the callback's answer and returns the address the provider vouches
for, or raises ``SignInFailed``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CLOCK_SKEW",
    "SignInFailed",
    "SignInFlow",
    "SignInPlugin",
    "check_nonce",
    "check_times",
    "provider_error",
]

#: Tolerated clock difference to the provider, for ``exp``/``nbf``/``iat``.
CLOCK_SKEW = 120


class SignInFailed(Exception):
    """A sign-in refused for one reason; ``str()`` is safe to log and to show."""


class SignInFlow(Protocol):
    def start(self) -> tuple[str, dict[str, Any]]:
        """Where to send the browser, and what to keep until it comes back."""
        ...

    def finish(self, flow: Mapping[str, Any], query: Mapping[str, str]) -> object:
        """The address the provider vouches for (unchecked text), from the callback's answer."""
        ...


@runtime_checkable
class SignInPlugin(Protocol):
    """A provider whose accounts people can sign in to the pages with."""

    def sign_in(
        self,
        client: Any,
        redirect_uri: str,
        *,
        form_post: bool,
        now: Callable[[], float],
    ) -> SignInFlow:
        """The flow for one sign-in with the web app registration ``client``."""
        ...


def provider_error(name: str, query: Mapping[str, str]) -> None:
    """The provider sent the person back with an error (declined, cancelled) instead of a code."""
    error = query.get("error")
    if error:
        shown = error if error.replace("_", "").isalnum() and len(error) <= 64 else "an error"
        raise SignInFailed(f"{name} answered {shown}")


def check_nonce(flow: Mapping[str, Any], nonce: object, name: str) -> None:
    expected = flow.get("nonce")
    if not isinstance(expected, str) or not isinstance(nonce, str):
        raise SignInFailed(f"{name}'s ID token carries no nonce")
    if not hmac.compare_digest(expected.encode(), nonce.encode()):
        raise SignInFailed(f"{name}'s ID token carries another nonce")


def check_times(claims: Mapping[str, Any], now: float, name: str) -> None:
    expires, not_before = claims.get("exp"), claims.get("nbf", claims.get("iat"))
    if not isinstance(expires, int | float) or expires + CLOCK_SKEW <= now:
        raise SignInFailed(f"{name}'s ID token has expired")
    if isinstance(not_before, int | float) and not_before - CLOCK_SKEW > now:
        raise SignInFailed(f"{name}'s ID token is not valid yet")
