"""proxy-header sign-in: the header is believed from trusted proxies, named by address or range."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from syncd.web.settings import WebSettings
from tests.unit.web.conftest import Org
from tests.unit.world import ANA


def open_as_ana(org: Org, trusted: tuple[str, ...], peer: str) -> int:
    """Status of Ana's meeting page asked for by ``peer`` with Ana named in the header."""
    app = org.app(WebSettings(sign_in="proxy-header", trusted_proxies=trusted))
    client = TestClient(
        app,
        base_url="https://testserver",
        headers={"X-Forwarded-Email": ANA},
        client=(peer, 40000),
    )
    meeting, _ = org.tokens(0)
    return client.get(f"/m/{meeting}").status_code


@pytest.mark.parametrize(
    ("trusted", "peer", "believed"),
    [
        (("10.0.0.0/8",), "10.1.2.3", True),
        (("10.0.0.0/8",), "10.255.255.254", True),
        (("10.0.0.0/8",), "11.0.0.1", False),
        (("10.0.0.0/8",), "192.168.1.1", False),
        (("10.0.0.0/8",), "::ffff:10.1.2.3", True),  # a dual-stack socket's view of 10.1.2.3
        (("192.168.4.0/24", "10.9.9.9"), "10.9.9.9", True),
        (("192.168.4.0/24", "10.9.9.9"), "10.9.9.8", False),
        (("fd00::/8",), "fd12:3456::1", True),
        (("fd00::/8",), "fe80::1", False),
        (("fd00::/8",), "2001:db8::1", False),
        (("::1",), "0:0:0:0:0:0:0:1", True),  # the same address, spelled out
        (("10.0.0.0/8",), "testclient", False),  # not an address: only an exact name matches
    ],
)
def test_a_peer_inside_a_trusted_range_is_believed_and_one_outside_is_not(
    org: Org, trusted: tuple[str, ...], peer: str, believed: bool
) -> None:
    # Ana's page: 200 when the proxy's word is taken, the one 404 for nobody otherwise.
    assert open_as_ana(org, trusted, peer) == (200 if believed else 404)
