"""The authenticator a sign-in mode names (``syncd.web.identity`` says what each does)."""

from __future__ import annotations

from syncd.web.demo_sign_in import DemoAuthenticator
from syncd.web.identity import Authenticator, LinkAuthenticator, ProxyHeaderAuthenticator
from syncd.web.oidc import OidcAuthenticator
from syncd.web.settings import WebSettings


def for_settings(settings: WebSettings) -> Authenticator:
    if settings.sign_in == "link":
        return LinkAuthenticator()
    if settings.sign_in == "proxy-header":
        return ProxyHeaderAuthenticator(settings.proxy_header, settings.trusted_proxies)
    if settings.sign_in == "oidc":
        return OidcAuthenticator(settings)
    if settings.sign_in == "demo":
        return DemoAuthenticator(settings)
    raise ValueError(f"unknown sign-in mode {settings.sign_in!r}")
