"""Watching everyone a Microsoft 365 tenant lists: config, Graph list users, assemble.

Over real HTTP with msal and httpx against the emulator, whose app
registration holds only the application permissions a test gives it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from providers.base import AuthRevoked, Transient
from providers.emulators.graph import GraphEmulator
from providers.microsoft.graph import MicrosoftProvider, app_token_source
from providers.microsoft.tokens import login_session
from syncd import assemble, config, secrets
from tests.providers.test_graph_emulator import schema_problems

ANA = "Ana.Lopez@Contoso.TEST"
BO = "bo@contoso.test"
CY = "cy@contoso.test"
ROOM = "room-1@contoso.test"
NOREPLY = "noreply@contoso.test"
LEFT = "left@contoso.test"
NO_MAILBOX = "contractor@contoso.test"
PERMITTED = ("Calendars.ReadWrite", "User.Read.All")


@pytest.fixture
def emulator() -> Iterator[GraphEmulator]:
    with GraphEmulator([ANA, BO, CY, ROOM, NOREPLY, LEFT], app_roles=PERMITTED) as running:
        running.disable_user(LEFT)
        running.add_user_without_mailbox(NO_MAILBOX)
        yield running


def graph(
    emulator: GraphEmulator, calendars: tuple[str, ...] = (), **kw: object
) -> MicrosoftProvider:
    tokens = app_token_source(
        emulator.https_authority,
        emulator.client_id,
        emulator.client_secret,
        http_client=login_session(emulator.ca_file),
    )
    return MicrosoftProvider(
        calendars,
        tokens,
        graph_root=emulator.graph_root,
        directory=True,
        directory_page_size=2,
        **kw,  # type: ignore[arg-type]
    )


def listings(emulator: GraphEmulator) -> list[dict[str, list[str]]]:
    return [r.query for r in emulator.requests if r.op == "users" and r.status == 200]


def app_token(emulator: GraphEmulator) -> str:
    return app_token_source(
        emulator.https_authority,
        emulator.client_id,
        emulator.client_secret,
        http_client=login_session(emulator.ca_file),
    )()


# --------------------------------------------------------------------------- list users


def test_enabled_users_with_a_mailbox_are_listed_across_pages(emulator: GraphEmulator) -> None:
    provider = graph(emulator)
    try:
        found = provider.directory()
    finally:
        provider.close()

    assert sorted(found) == sorted([ANA.lower(), BO, CY, ROOM, NOREPLY])
    pages = listings(emulator)
    assert len(pages) == 3  # five enabled users, two a page
    first = pages[0]
    assert first["$select"] == ["id,mail,userPrincipalName,accountEnabled,displayName"]
    assert first["$expand"] == ["manager($select=mail)"]  # in the same pages, not one GET each
    assert first["$filter"] == ["accountEnabled eq true"]
    assert first["$top"] == ["2"]
    assert all("$skiptoken" in page for page in pages[1:])


def test_calendars_are_the_configured_then_the_directory_minus_excludes(
    emulator: GraphEmulator,
) -> None:
    provider = graph(
        emulator,
        ("Bo@Contoso.test", "room-9@contoso.test"),
        directory_exclude=["ROOM-*", "noreply@*"],
    )
    try:
        watched = provider.calendars()
    finally:
        provider.close()

    assert watched[:2] == ["Bo@Contoso.test", "room-9@contoso.test"]  # never excluded
    assert sorted(watched[2:]) == sorted([ANA.lower(), CY])


def test_without_user_read_all_the_listing_is_auth_revoked(emulator: GraphEmulator) -> None:
    emulator.set_app_roles(["Calendars.ReadWrite"])  # the consent as syncd needed it before
    provider = graph(emulator)
    try:
        with pytest.raises(AuthRevoked, match="User.Read.All") as caught:
            provider.directory()
    finally:
        provider.close()
    assert "Authorization_RequestDenied" in str(caught.value)


def test_a_server_error_is_transient(emulator: GraphEmulator) -> None:
    emulator.faults.fail("users", 500, "generalException")
    provider = graph(emulator)
    try:
        with pytest.raises(Transient):
            provider.directory()
    finally:
        provider.close()


def test_the_emulator_answers_list_users_as_graph_does(emulator: GraphEmulator) -> None:
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.user_collection_response import UserCollectionResponse

    headers = {"Authorization": f"Bearer {app_token(emulator)}"}
    with httpx.Client(base_url=emulator.graph_root, headers=headers) as client:
        plain = client.get("users").json()
        selected = client.get("users", params={"$select": "id,mail,accountEnabled"}).json()
        too_big = client.get("users", params={"$top": "1000"})
        odd_filter = client.get("users", params={"$filter": "startswith(mail,'a')"})
    emulator.set_app_roles(["Calendars.ReadWrite"])
    with httpx.Client(base_url=emulator.graph_root) as client:
        denied = client.get("users", headers={"Authorization": f"Bearer {app_token(emulator)}"})

    documents = [
        (plain, UserCollectionResponse),
        (selected, UserCollectionResponse),
        (too_big.json(), ODataError),
        (denied.json(), ODataError),
    ]
    assert [p for doc, model in documents for p in schema_problems(doc, model)] == []
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "Authorization_RequestDenied"

    # Without $select: Graph's default properties, which leave accountEnabled out.
    assert all("accountEnabled" not in user and "mail" in user for user in plain["value"])
    assert {user["mail"] for user in plain["value"]} >= {BO, None}
    assert too_big.status_code == 400
    assert "Must be between 1 and 999" in too_big.json()["error"]["message"]
    assert odd_filter.status_code == 400


# --------------------------------------------------------------------------- config


BASE = (
    '[[accounts]]\nname = "contoso"\nprovider = "microsoft"\ntenant = "t"\nclient_id = "c"\n'
    'client_secret_file = "secret"\n'
)


def test_a_directory_account_needs_no_calendars() -> None:
    text = BASE + 'directory = true\ndirectory_exclude = ["NoReply@*"]\n'
    (account,) = config.parse(text, Path("/etc/syncd/syncd.toml")).accounts
    assert account.directory and account.calendars == ()
    assert account.directory_exclude == ("noreply@*",)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            '[[accounts]]\nname = "ana"\nprovider = "microsoft"\nmode = "single-user"\n'
            'tenant = "t"\nclient_id = "c"\ncalendars = ["ana@x.test"]\ndirectory = true\n',
            "accounts[0].directory",
        ),
        (BASE + 'directory = true\ndirectory_admin = "a@x.test"\n', "accounts[0].directory_admin"),
        (BASE + 'directory = true\ndirectory_exclude = [""]\n', "accounts[0].directory_exclude[0]"),
        (BASE + 'directory = true\ndirectory_exclude = "x"\n', "accounts[0].directory_exclude"),
    ],
)
def test_directory_mistakes_are_one_line_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.parse(text, Path("/etc/syncd/syncd.toml"))
    assert caught.value.key == key
    assert len(str(caught.value).splitlines()) == 1


# --------------------------------------------------------------------------- assemble


def test_a_client_secret_others_can_read_is_refused_with_one_line(
    emulator: GraphEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    secret = tmp_path / "graph-secret"
    secret.write_text(emulator.client_secret, encoding="utf-8")
    secret.chmod(0o604)
    text = (
        f'[[accounts]]\nname = "contoso"\nprovider = "microsoft"\ntenant = "{emulator.tenant}"\n'
        f'client_id = "{emulator.client_id}"\nclient_secret_file = "{secret}"\n'
        f'graph_root = "{emulator.graph_root}"\ncalendars = ["{BO}"]\n'
        f'authority = "{emulator.login_root}"\nca_file = "{emulator.ca_file}"\n'
    )
    settings = config.parse(text, tmp_path / "syncd.toml")
    (account,) = settings.accounts
    with pytest.raises(secrets.SecretError) as refused, assemble.connected(account, settings):
        pass
    message = str(refused.value)
    assert "\n" not in message and str(secret) in message and "0604" in message
    assert "accounts[0].client_secret_file" in message
    assert emulator.client_secret not in message
    assert not emulator.requests  # nothing was sent with a secret others may hold


def test_a_directory_tenant_connects_with_everyone(emulator: GraphEmulator, tmp_path: Path) -> None:
    secret = tmp_path / "graph-secret"
    secret.write_text(emulator.client_secret, encoding="utf-8")
    secret.chmod(0o600)
    text = (
        f'[[accounts]]\nname = "contoso"\nprovider = "microsoft"\ntenant = "{emulator.tenant}"\n'
        f'client_id = "{emulator.client_id}"\nclient_secret_file = "{secret}"\n'
        f'graph_root = "{emulator.graph_root}"\ndirectory = true\n'
        f'authority = "{emulator.login_root}"\nca_file = "{emulator.ca_file}"\n'
        'directory_exclude = ["room-*@*", "noreply@*"]\n'
    )
    settings = config.parse(text, tmp_path / "syncd.toml")
    (account,) = settings.accounts
    with assemble.connected(account, settings) as conn:
        assert sorted(conn.calendars) == sorted([ANA.lower(), BO, CY])
        emulator.add_user("dee@contoso.test")
        assert "dee@contoso.test" in assemble.refresh_calendars(conn)


def test_the_directory_gives_names_and_managers_in_the_same_pages(
    emulator: GraphEmulator,
) -> None:
    emulator.set_manager(BO, ANA)
    provider = graph(emulator)
    try:
        listed = {person.address: person for person in provider.directory_people()}
    finally:
        provider.close()
    assert listed[BO].manager == ANA.lower() and listed[ANA.lower()].manager is None
    assert listed[BO].name  # Graph's displayName
    assert len(listings(emulator)) == 3  # no request per person for the manager


def test_expanding_the_manager_caps_a_page_at_100_as_graph_does(emulator: GraphEmulator) -> None:
    for n in range(120):
        emulator.add_user(f"p{n:03d}@contoso.test")
    tokens = app_token_source(
        emulator.https_authority, emulator.client_id, emulator.client_secret,
        http_client=login_session(emulator.ca_file),
    )  # fmt: skip
    provider = MicrosoftProvider(
        (), tokens, graph_root=emulator.graph_root, directory=True, directory_page_size=999
    )
    try:
        found = provider.directory()
    finally:
        provider.close()
    assert len(found) == 125  # the five enabled mailboxes and the 120
    pages = listings(emulator)
    assert len(pages) == 2 and pages[0]["$top"] == ["999"]  # 100 a page with $expand
