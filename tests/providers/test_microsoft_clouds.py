"""National clouds: the account's ``cloud`` decides where it signs in, which Graph it calls,
and what its tokens are for, asserted on the wire.

A US Government tenant is reached at login.microsoftonline.us and
graph.microsoft.us: the test resolves those two names to the Graph
emulator's https listener (whose certificate covers them, signed by the CA
the account's ``ca_file`` names), so the requests carry the real host names,
paths and scopes. Nothing else in the config points at the emulator.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msal  # type: ignore[import-untyped]
import pytest

from providers.emulators.graph import GraphEmulator
from providers.microsoft import MicrosoftPlugin
from providers.microsoft.clouds import endpoints
from providers.microsoft.tokens import login_session
from providers.model import Window
from syncd import assemble, config

ANA = "ana@agency.test"
BO = "bo@agency.test"
US_LOGIN = "login.microsoftonline.us"
US_GRAPH = "graph.microsoft.us"
T0 = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cloud", "login", "graph"),
    [
        ("global", "https://login.microsoftonline.com", "https://graph.microsoft.com"),
        ("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
        ("usgov-dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
        ("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
    ],
)
def test_each_cloud_signs_in_calls_graph_and_asks_for_tokens_in_that_cloud(
    cloud: Any, login: str, graph: str
) -> None:
    found = endpoints(cloud, "t-1")
    assert found.authority == f"{login}/t-1"
    assert found.graph_root == f"{graph}/v1.0/"
    assert found.app_scopes == (f"{graph}/.default",)


def test_explicit_endpoints_override_where_to_connect_but_not_what_tokens_are_for() -> None:
    found = endpoints("usgov", "t-1", "https://127.0.0.1:8443/", "http://127.0.0.1:9/v1.0/")
    assert found.authority == "https://127.0.0.1:8443/t-1"
    assert found.graph_root == "http://127.0.0.1:9/v1.0/"
    assert found.app_scopes == ("https://graph.microsoft.us/.default",)
    assert found.delegated_scopes == ("https://graph.microsoft.us/Calendars.ReadWrite",)
    # The global cloud keeps the bare name its older grants were made with.
    assert endpoints("global", "t-1").delegated_scopes == ("Calendars.ReadWrite",)


@pytest.fixture
def usgov(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphEmulator]:
    """A US Government tenant, its two host names resolved to the emulator."""
    with GraphEmulator(
        [ANA, BO], resource=f"https://{US_GRAPH}", tls_names=[US_LOGIN, US_GRAPH]
    ) as emulator:
        real = socket.getaddrinfo

        def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host in (US_LOGIN, US_GRAPH) and port in (443, "443", "https"):
                return real("127.0.0.1", emulator.tls_port, *args, **kwargs)
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        yield emulator


def test_a_usgov_account_asks_the_us_government_authority_for_us_government_graph_tokens(
    usgov: GraphEmulator, tmp_path: Path
) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text(usgov.client_secret, encoding="utf-8")
    secret.chmod(0o600)
    settings = config.parse(
        f'[[accounts]]\nname = "agency"\nprovider = "microsoft"\ncalendars = ["{ANA}"]\n'
        f'tenant = "{usgov.tenant}"\nclient_id = "{usgov.client_id}"\n'
        f'client_secret_file = "client-secret"\ncloud = "usgov"\nca_file = "{usgov.ca_file}"\n',
        tmp_path / "syncd.toml",
    )
    uid = usgov.create_event(ANA, [BO], "Ana / Bo", T0, T0 + timedelta(hours=1))
    (account,) = settings.accounts
    graph = MicrosoftPlugin().provider(account, assemble.setup(account, settings))
    try:
        window = Window(T0 - timedelta(days=1), T0 + timedelta(days=7))
        events = [e for page in graph.changes(ANA, None, window) for e in page.events]
    finally:
        graph.close()
    assert [e.key.ical_uid for e in events] == [uid]

    (token,) = [r for r in usgov.requests if r.op == "token"]
    assert token.headers["host"] == US_LOGIN
    assert token.path == f"/{usgov.tenant}/oauth2/v2.0/token"
    assert isinstance(token.body, dict)
    assert token.body["scope"] == f"https://{US_GRAPH}/.default"
    reads = [r for r in usgov.requests if r.path.startswith("/v1.0/")]
    assert reads and all(r.headers["host"] == US_GRAPH for r in reads)


def test_a_global_scope_is_refused_by_a_us_government_tenant(usgov: GraphEmulator) -> None:
    """The emulator is not lenient about clouds, or the test above would prove nothing."""
    app = msal.ConfidentialClientApplication(
        usgov.client_id,
        client_credential=usgov.client_secret,
        authority=f"https://{US_LOGIN}/{usgov.tenant}",
        http_client=login_session(usgov.ca_file),
    )
    answer = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    assert answer.get("error") == "invalid_scope"
