"""Settings of the agenda pages and the JSON API.

``syncd.assemble.web_settings`` builds them from ``[web]`` (and ``[web.oidc]``)
of the config file; tests build them directly. The TOML keys::

    [web]
    sign_in = "oidc"                    # "link" | "proxy-header" | "oidc"
    admins = ["it-ops@example.org"]     # may open every agenda, read-only
    secure_cookies = true               # false only for plain-http development
    timezone = "Europe/Berlin"          # times on the pages; "" = [syncd] timezone
    proxy_header = "X-Forwarded-Email"  # proxy-header: set by the authenticating proxy
    trusted_proxies = ["10.0.0.0/8", "::1"]  # proxy-header: peers whose header is believed

    [web.oidc]                          # oidc: Google and/or Microsoft sign-in
    providers = ["google", "microsoft"]
    session_secret_file = "credential:syncd-session"

``sign_in = "link"`` is the default: the token in the invite alone opens the
agenda, edits are attributed to "someone with the link", and private notes
are off. With ``proxy-header``, only a request whose TCP peer is one of
``trusted_proxies`` (single addresses or CIDR ranges) has an identity; the
header from anyone else is ignored. Run uvicorn without ``--proxy-headers``
(or with ``forwarded_allow_ips`` empty) in that mode, so that the peer seen
here is the proxy itself. With ``oidc``, people sign in with Google or
Microsoft and a session cookie names them (``syncd.web.oidc``).

Secrets (the session secret, client secrets) arrive here already read from
their files, and are kept out of ``repr`` so a settings object in a log or
a traceback does not carry them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SignIn = Literal["link", "proxy-header", "oidc", "demo"]
#: "demo" is not among them: only ``syncd demo`` builds it (``syncd.web.demo_sign_in``)
CONFIGURABLE_SIGN_INS: tuple[SignIn, ...] = ("link", "proxy-header", "oidc")

#: Where Google publishes the certificates its ID tokens are signed with.
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
#: A session secret shorter than this is refused: it is what a forger must guess.
MIN_SESSION_SECRET = 32


@dataclass(frozen=True)
class GoogleSignIn:
    """A Google OAuth client of type "Web application" (its JSON gives all but certs_url)."""

    client_id: str
    client_secret: str = field(repr=False)
    auth_uri: str = GOOGLE_AUTH_URI
    token_uri: str = GOOGLE_TOKEN_URI
    certs_url: str = GOOGLE_CERTS_URL


@dataclass(frozen=True)
class MicrosoftSignIn:
    """An Entra ID app registration (a web app with a client secret) in one tenant.

    ``cloud``, ``authority`` and ``ca_file`` say where its people sign in, as
    for a Microsoft account (see the Microsoft plugin's clouds).
    """

    tenant: str
    client_id: str
    client_secret: str = field(repr=False)
    cloud: str = "global"
    authority: str = ""
    ca_file: str = ""


@dataclass(frozen=True)
class OidcSettings:
    """What ``oidc`` sign-in needs: the session secret and at least one provider."""

    session_secret: bytes = field(repr=False)
    session_hours: int = 12
    google: GoogleSignIn | None = None
    microsoft: MicrosoftSignIn | None = None

    def __post_init__(self) -> None:
        if len(self.session_secret) < MIN_SESSION_SECRET:
            raise ValueError(f"the session secret must be at least {MIN_SESSION_SECRET} bytes")
        if self.google is None and self.microsoft is None:
            raise ValueError("oidc sign-in needs Google or Microsoft (or both)")
        if not 1 <= self.session_hours <= 24 * 30:
            raise ValueError("session_hours must be between 1 and 720")


@dataclass(frozen=True)
class WebSettings:
    sign_in: SignIn = "link"
    proxy_header: str = "X-Forwarded-Email"
    #: Addresses or CIDR ranges ("10.0.0.0/8", "fd00::/8"); anything else is
    #: matched as a peer name (a unix socket, a test client's name).
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    admins: tuple[str, ...] = ()
    base_url: str = ""
    secure_cookies: bool = True
    zone: str = "UTC"  # IANA name of the zone times are shown in by default
    oidc: OidcSettings | None = None
    #: ``[syncd] carry_talking_points``: the next meeting lists earlier unchecked points
    carry_talking_points: bool = True
    #: ``sign_in = "demo"`` only: the made-up people one may pick to be
    demo_people: tuple[str, ...] = ()
    #: and how the picker names them: (address, name) pairs
    demo_names: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.sign_in not in (*CONFIGURABLE_SIGN_INS, "demo"):
            raise ValueError(f"unknown sign-in mode {self.sign_in!r}")
        if (self.sign_in == "demo") != bool(self.demo_people):
            raise ValueError("demo sign-in needs the demo's people, and only it has them")
        if not self.proxy_header.strip():
            raise ValueError("proxy_header must name a header")
        try:
            ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.zone!r}") from None
        if self.sign_in == "oidc":
            if self.oidc is None:
                raise ValueError("sign_in 'oidc' needs oidc settings")
            if not self.base_url.startswith(("https://", "http://")):
                raise ValueError("sign_in 'oidc' needs base_url (the redirect address)")
