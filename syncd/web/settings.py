"""Settings of the agenda pages and the JSON API.

Kept apart from ``syncd.config`` for now; ``create_app(..., web=WebSettings(...))``
takes them. The intended TOML keys, once wired into the config file::

    [web]
    sign_in = "proxy-header"            # "link" | "proxy-header" ("oidc" later)
    base_url = "https://agenda.example.org"
    admins = ["it-ops@example.org"]     # may open every agenda, read-only
    secure_cookies = true               # false only for plain-http development
    timezone = "Europe/Berlin"          # times on the pages; "" = [syncd] timezone

    [web.proxy_header]
    header = "X-Forwarded-Email"        # set by the authenticating proxy
    trusted_proxies = ["127.0.0.1", "::1"]  # peers whose header is believed

``sign_in = "link"`` is the default: the token in the invite alone opens the
agenda, edits are attributed to "someone with the link", and private notes
are off. With ``proxy-header``, only a request whose TCP peer is one of
``trusted_proxies`` has an identity; the header from anyone else is ignored.
Times are shown in ``zone`` (an IANA name) unless the viewer picked
another one on the meeting page (a cookie; see ``syncd.web.zones``).
Run uvicorn without ``--proxy-headers`` (or with ``forwarded_allow_ips``
empty) in that mode, so that the peer seen here is the proxy itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SignIn = Literal["link", "proxy-header"]


@dataclass(frozen=True)
class WebSettings:
    sign_in: SignIn = "link"
    proxy_header: str = "X-Forwarded-Email"
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    admins: tuple[str, ...] = ()
    base_url: str = ""
    secure_cookies: bool = True
    zone: str = "UTC"  # IANA name of the zone times are shown in by default

    def __post_init__(self) -> None:
        if self.sign_in not in ("link", "proxy-header"):
            raise ValueError(f"unknown sign-in mode {self.sign_in!r}")
        if not self.proxy_header.strip():
            raise ValueError("proxy_header must name a header")
        try:
            ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.zone!r}") from None
