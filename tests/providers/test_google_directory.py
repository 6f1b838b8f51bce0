"""Watching everyone a Google Workspace directory lists: config, Admin SDK users.list, assemble.

Over real HTTP with google-api-python-client and google-auth against the
emulator, whose users.list answers administrators only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import googleapiclient
import pytest
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from providers.base import AuthRevoked, Transient
from providers.emulators.google import GoogleEmulator
from providers.google import GoogleOptions
from providers.google.calendar import DIRECTORY_SCOPE, GoogleDirectory, GoogleProvider
from providers.google.grant import SCOPES as GOOGLE_SCOPES
from syncd import assemble, config, people, runtime
from syncd.store import sessions, transaction

ADMIN = "admin@example.test"
ANA = "Ana.Lopez@Example.TEST"  # primaryEmail as the admin typed it
BO = "bo@example.test"
CY = "cy@other.test"
SUSPENDED = "gone@example.test"
ARCHIVED = "alumna@example.test"
ROOM = "room-1@example.test"
NOREPLY = "noreply@example.test"


@pytest.fixture
def emulator() -> Iterator[GoogleEmulator]:
    with GoogleEmulator([ANA, BO, CY, ROOM, NOREPLY]) as running:
        running.add_user(ADMIN, admin=True)
        running.add_user(SUSPENDED, suspended=True)
        running.add_user(ARCHIVED, archived=True)
        yield running


def directory(
    emulator: GoogleEmulator,
    *,
    subject: str = ADMIN,
    scopes: Sequence[str] = (DIRECTORY_SCOPE,),
    domain: str = "",
) -> GoogleDirectory:
    credentials = service_account.Credentials.from_service_account_info(
        emulator.service_account_info(), scopes=list(scopes)
    ).with_subject(subject)
    return GoogleDirectory(credentials, domain=domain, root=emulator.base_url, page_size=2)


def admin_users(emulator: GoogleEmulator) -> Any:
    """The Admin SDK's users() resource, called directly as the admin."""
    credentials = service_account.Credentials.from_service_account_info(
        emulator.service_account_info(), scopes=[DIRECTORY_SCOPE]
    ).with_subject(ADMIN)
    return build(
        "admin",
        "directory_v1",
        credentials=credentials,
        static_discovery=True,
        client_options={"api_endpoint": emulator.base_url},
    ).users()


def listings(emulator: GoogleEmulator) -> list[dict[str, list[str]]]:
    return [r.query for r in emulator.requests if r.op == "users" and r.status == 200]


# --------------------------------------------------------------------------- users.list


def test_everyone_active_is_listed_across_pages_lowercased(emulator: GoogleEmulator) -> None:
    found = directory(emulator).addresses()

    # Neither the suspended nor the archived user.
    assert sorted(found) == sorted([ADMIN, ANA.lower(), BO, CY, ROOM, NOREPLY])
    pages = listings(emulator)
    assert len(pages) == 4  # 8 users, 2 a page
    assert all(page["customer"] == ["my_customer"] and "domain" not in page for page in pages)
    assert "pageToken" not in pages[0] and all("pageToken" in page for page in pages[1:])


def test_the_directory_gives_full_names_and_the_manager_relation(
    emulator: GoogleEmulator,
) -> None:
    emulator.set_person(BO, full_name="Bo Berg", manager=ANA)
    listed = {person.address: person for person in directory(emulator).people()}
    assert listed[BO].name == "Bo Berg" and listed[BO].manager == ANA.lower()
    assert listed[CY].manager is None and listed[CY].name  # the name made from the address
    emulator.set_person(BO, manager="")
    assert {p.address: p for p in directory(emulator).people()}[BO].manager is None


def test_one_domain_only(emulator: GoogleEmulator) -> None:
    assert directory(emulator, domain="other.test").addresses() == [CY]
    (page,) = listings(emulator)
    assert page["domain"] == ["other.test"] and "customer" not in page


def test_the_provider_watches_the_configured_and_the_directory_minus_excludes(
    emulator: GoogleEmulator,
) -> None:
    delegating = service_account.Credentials.from_service_account_info(
        emulator.service_account_info(), scopes=list(GOOGLE_SCOPES)
    )
    provider = GoogleProvider(
        ["Bo@Example.test", "room-9@example.test"],  # named in the config: never excluded
        lambda person: delegating.with_subject(person),
        api_root=emulator.api_root,
        directory=directory(emulator),
        directory_exclude=["ROOM-*@example.test", "noreply@*"],
    )

    watched = provider.calendars()

    assert watched[:2] == ["Bo@Example.test", "room-9@example.test"]
    assert sorted(watched[2:]) == sorted([ADMIN, ANA.lower(), CY])


def test_a_subject_who_is_not_an_admin_is_auth_revoked(emulator: GoogleEmulator) -> None:
    with pytest.raises(AuthRevoked, match="Not Authorized to access this resource/api"):
        directory(emulator, subject=BO).addresses()


def test_a_scope_missing_from_the_delegation_is_auth_revoked(emulator: GoogleEmulator) -> None:
    emulator.delegate_scopes(GOOGLE_SCOPES)  # the admin delegated the calendar scope only

    with pytest.raises(AuthRevoked, match="unauthorized_client"):
        directory(emulator).addresses()


def test_a_token_without_the_directory_scope_is_auth_revoked(emulator: GoogleEmulator) -> None:
    with pytest.raises(AuthRevoked, match="insufficient authentication scopes"):
        directory(emulator, scopes=GOOGLE_SCOPES).addresses()


def test_a_server_error_is_transient(emulator: GoogleEmulator) -> None:
    emulator.faults.fail("users", 503, "backendError")
    with pytest.raises(Transient):
        directory(emulator).addresses()


DISCOVERY = json.loads(
    (
        Path(googleapiclient.__file__).parent
        / "discovery_cache"
        / "documents"
        / "admin.directory_v1.json"
    ).read_text(encoding="utf-8")
)


def schema_problems(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Fields the discovery document does not know, or of another JSON type, recursively."""
    while "$ref" in schema:
        schema = DISCOVERY["schemas"][schema["$ref"]]
    kind = schema.get("type")
    types = {"string": str, "boolean": bool, "object": dict, "array": list}
    if kind == "any":
        return []
    if not isinstance(value, types[str(kind)]):
        return [f"{path}: not a JSON {kind}"]
    if kind == "array":
        return [p for i, v in enumerate(value) for p in schema_problems(v, schema["items"], path)]
    if kind != "object":
        return []
    known = schema.get("properties", {})
    return [
        problem
        for key, item in value.items()
        for problem in (
            schema_problems(item, known[key], f"{path}.{key}")
            if key in known
            else [f"{path}.{key}: not in the schema"]
        )
    ]


def test_users_list_answers_match_the_discovery_document(emulator: GoogleEmulator) -> None:
    users = admin_users(emulator)
    first = users.list(customer="my_customer", maxResults=6).execute()
    rest = users.list(customer="my_customer", pageToken=first["nextPageToken"]).execute()

    response = DISCOVERY["resources"]["users"]["methods"]["list"]["response"]
    assert (
        schema_problems(first, response, "Users") + schema_problems(rest, response, "Users") == []
    )
    assert {user["suspended"] for user in first["users"] + rest["users"]} == {True, False}
    assert "nextPageToken" not in rest


def test_a_listing_without_customer_or_domain_is_refused_as_google_does(
    emulator: GoogleEmulator,
) -> None:
    users = admin_users(emulator)
    with pytest.raises(HttpError) as caught:
        users.list().execute()
    assert caught.value.resp.status == 400
    with pytest.raises(HttpError) as caught:
        users.list(customer="my_customer", maxResults=501).execute()
    assert caught.value.resp.status == 400
    assert "maxResults" in caught.value.content.decode()


# --------------------------------------------------------------------------- config


BASE = '[[accounts]]\nname = "acme"\nprovider = "google"\nservice_account_file = "sa.json"\n'


def test_directory_accounts_need_no_calendars_and_fold_their_settings() -> None:
    text = (
        BASE + "directory = true\n"
        'directory_admin = "Admin@Example.TEST"\n'
        'directory_domain = "@Example.test"\n'
        'directory_exclude = ["Room-*@example.test"]\n'
    )
    (account,) = config.parse(text, Path("/etc/syncd/syncd.toml")).accounts
    assert account.directory and account.calendars == ()
    assert account.directory_exclude == ("room-*@example.test",)
    assert isinstance(account.options, GoogleOptions)
    assert account.options.directory_admin == ADMIN
    assert account.options.directory_domain == "example.test"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (BASE + "directory = true\n", "accounts[0].directory_admin"),
        (BASE + 'directory = true\ndirectory_admin = "nobody"\n', "accounts[0].directory_admin"),
        (
            '[[accounts]]\nname = "ana"\nprovider = "google"\nmode = "single-user"\n'
            'client_secrets_file = "c.json"\ndirectory = true\ndirectory_admin = "a@x.test"\n',
            "accounts[0].directory",
        ),
        (
            BASE + 'calendars = ["a@x.test"]\ndirectory_exclude = ["x*"]\n',
            "accounts[0].directory_exclude",
        ),
        (
            BASE + 'calendars = ["a@x.test"]\ndirectory_admin = "a@x.test"\n',
            "accounts[0].directory_admin",
        ),
        (BASE + "directory = 'yes'\n", "accounts[0].directory"),
        ('[[accounts]]\nname = "m"\ndirectory = true\n', "accounts[0].directory"),
        (BASE + "\n", "accounts[0].calendars"),
    ],
)
def test_directory_mistakes_are_one_line_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.parse(text, Path("/etc/syncd/syncd.toml"))
    assert caught.value.key == key
    assert len(str(caught.value).splitlines()) == 1


# --------------------------------------------------------------------------- assemble


@pytest.fixture
def settings(emulator: GoogleEmulator, tmp_path: Path) -> config.Settings:
    key = tmp_path / "sa.json"
    key.write_text(json.dumps(emulator.service_account_info()), encoding="utf-8")
    key.chmod(0o600)
    text = (
        '[[accounts]]\nname = "acme"\nprovider = "google"\n'
        f'service_account_file = "{key}"\napi_root = "{emulator.api_root}"\n'
        f'directory = true\ndirectory_admin = "{ADMIN}"\n'
        'directory_exclude = ["room-*@*", "noreply@*"]\n'
    )
    return config.parse(text, tmp_path / "syncd.toml")


def test_a_directory_account_connects_with_everyone_and_refreshes(
    emulator: GoogleEmulator, settings: config.Settings
) -> None:
    (account,) = settings.accounts
    with assemble.connected(account, settings) as conn:
        assert sorted(conn.calendars) == sorted([ADMIN, ANA.lower(), BO, CY])
        assert conn.directory_error is None

        emulator.add_user("dee@example.test")  # joins while the daemon runs
        emulator.set_directory_flags(BO, suspended=True)  # and Bo leaves
        refreshed = assemble.refresh_calendars(conn)

        assert sorted(refreshed) == sorted([ADMIN, ANA.lower(), CY, "dee@example.test"])
        assert conn.calendars == refreshed


def test_a_failing_directory_keeps_the_calendars_known_and_says_why(
    emulator: GoogleEmulator, settings: config.Settings
) -> None:
    (account,) = settings.accounts
    with assemble.connected(account, settings) as conn:
        known = list(conn.calendars)
        emulator.set_directory_flags(ADMIN, admin=False)  # the admin lost the role

        assert assemble.refresh_calendars(conn) == known
        assert conn.calendars == known
        assert isinstance(conn.directory_error, AuthRevoked)


def test_the_directory_names_people_and_says_who_manages_whom_on_the_pages(
    emulator: GoogleEmulator, settings: config.Settings, db_engine: Any
) -> None:
    """Listed once an hour with everyone else: a manager change reaches the pages."""
    emulator.set_person(BO, full_name="Bo Berg", manager=ANA)
    factory = sessions(db_engine)
    (account,) = settings.accounts
    with assemble.connected(account, settings) as conn:
        runtime.record_directory(factory, conn)
        with transaction(factory) as session:
            named = people.lookup(session, [ANA.lower(), BO])
        assert named[BO].shown == "Bo Berg"
        assert people.manager_in((ANA.lower(), BO), named) == ANA.lower()

        emulator.set_person(BO, manager=CY)  # Bo gets a new manager
        assemble.refresh_calendars(conn)
        runtime.record_directory(factory, conn)
        with transaction(factory) as session:
            named = people.lookup(session, [ANA.lower(), BO, CY])
        assert people.manager_in((ANA.lower(), BO), named) is None
        assert people.manager_in((BO, CY), named) == CY
