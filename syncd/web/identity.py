"""Who is looking at a page, and what they may do there.

A ``Viewer`` is resolved once per request by the configured ``Authenticator``:

* ``link``: nobody is signed in; the agenda token in the address alone opens
  the agenda. Edits are attributed to ``agenda.LINK_ACTOR`` ("someone with
  the link"), never to a person picked in a "you are" selector (anyone with
  the link could pick the other person). Private notes are off, and the
  pages say so.
* ``proxy-header``: an authenticating proxy in front of syncd puts the
  person's address in a header. The header is believed only when the TCP
  peer is one of the configured proxies (an address, or a CIDR range for a
  pool of them); from anyone else it is ignored, so a client talking to
  syncd directly has no identity at all.
* ``demo`` (``syncd.web.demo_sign_in``, built by ``syncd demo`` only): the
  link opens the agenda as in ``link``; whoever picked one of its two people
  edits as that person and has private notes.
* ``oidc`` (``syncd.web.oidc``): people sign in with Google or Microsoft; the
  authenticator contributes its own routes (sign-in, callbacks, sign-out)
  through ``Authenticator.routes`` and reads a session cookie in
  ``identify``. A request without a session raises ``SignInRequired``: the
  app sends a page request to the sign-in page (and back afterwards) and
  answers an API call with 401. Whether the agenda exists plays no part in
  that, so the redirect says nothing about a token.

``access`` turns a viewer into what they may do with one pair's agenda, or
``None``: and ``None`` is answered with the same 404 as an unknown token.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from starlette.requests import Request
from starlette.routing import BaseRoute

from syncd import agenda
from syncd.web.settings import SignIn, WebSettings

MAX_ADDRESS = 320


@dataclass(frozen=True)
class Viewer:
    """The person behind a request: a canonical address, or None when unknown."""

    address: str | None
    sign_in: SignIn


@dataclass(frozen=True)
class Access:
    """What a viewer may do with one pair's agenda."""

    viewer: Viewer
    actor: str | None  # whom edits are attributed to; None: read-only
    private_notes: bool  # whether the viewer has (and may write) a private note
    admin: bool = False

    @property
    def can_edit(self) -> bool:
        return self.actor is not None

    @property
    def note_owner(self) -> str | None:
        """The author whose private notes this viewer sees: their own, or nobody's."""
        return self.viewer.address if self.private_notes else None


class SignInRequired(Exception):
    """Nobody is signed in, and this sign-in mode needs somebody (``oidc``)."""


def sign_in_location(request: Request) -> str:
    """The sign-in page, told to come back to what was asked for.

    A GET comes back to itself; a form post comes back to the page it was
    posted from (``/m/{token}``), since a redirect can only be followed with
    a GET and the form must be submitted again anyway.
    """
    path = request.url.path
    if request.method in ("GET", "HEAD"):
        back = path + (f"?{request.url.query}" if request.url.query else "")
    else:
        back = "/".join(path.split("/")[:3])
    return f"/signin?next={quote(back, safe='/')}"


class Authenticator(Protocol):
    def identify(self, request: Request) -> Viewer: ...

    def routes(self) -> list[BaseRoute]: ...


def canonical(address: str) -> str:
    return address.strip().casefold()


class LinkAuthenticator:
    """The token alone: every request is an unnamed viewer."""

    def identify(self, request: Request) -> Viewer:
        return Viewer(None, "link")

    def routes(self) -> list[BaseRoute]:
        return []


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxy_network(entry: str) -> Network | None:
    """``entry`` as a network ("10.0.0.0/8"; an address is a network of one), or None.

    Host bits set ("10.0.0.1/8") are an error rather than silently widened:
    whoever wrote it meant something, and trust must not be guessed.
    """
    try:
        return ipaddress.ip_network(entry.strip(), strict=True)
    except ValueError:
        return None


def _peer_address(peer: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return None  # not an IP (e.g. a unix socket or a test client's name)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.1.2.3 on a dual-stack socket is 10.1.2.3
    return address


class ProxyHeaderAuthenticator:
    """An address from a header, believed only from the configured proxies."""

    def __init__(self, header: str, trusted_proxies: tuple[str, ...]) -> None:
        self.header = header
        networks = [(entry, proxy_network(entry)) for entry in trusted_proxies]
        self.networks = tuple(network for _, network in networks if network is not None)
        self.names = frozenset(entry for entry, network in networks if network is None)

    def trusted(self, peer: str) -> bool:
        address = _peer_address(peer)
        if address is None:
            return peer in self.names
        return any(address in network for network in self.networks)

    def identify(self, request: Request) -> Viewer:
        peer = request.client.host if request.client is not None else None
        if peer is None or not self.trusted(peer):
            return Viewer(None, "proxy-header")
        values = request.headers.getlist(self.header)
        if len(values) != 1:
            return Viewer(None, "proxy-header")  # absent, or ambiguous: nobody
        address = canonical(values[0])
        if "@" not in address or len(address) > MAX_ADDRESS or "," in address:
            return Viewer(None, "proxy-header")
        return Viewer(address, "proxy-header")

    def routes(self) -> list[BaseRoute]:
        return []


def access(viewer: Viewer, people: tuple[str, str], settings: WebSettings) -> Access | None:
    """What ``viewer`` may do with the agenda of ``people``; None: not theirs (404)."""
    if viewer.sign_in == "link":
        return Access(viewer, actor=agenda.LINK_ACTOR, private_notes=False)
    if viewer.sign_in == "demo":
        # the demo stands on the link: one of its two people gets their private notes
        if viewer.address in people:
            return Access(viewer, actor=viewer.address, private_notes=True)
        return Access(viewer, actor=agenda.LINK_ACTOR, private_notes=False)
    if viewer.address is None:
        return None
    if viewer.address in people:
        return Access(viewer, actor=viewer.address, private_notes=True)
    if viewer.address in {canonical(admin) for admin in settings.admins}:
        # Admins may look (to help), never edit and never see a private note.
        return Access(viewer, actor=None, private_notes=False, admin=True)
    return None
