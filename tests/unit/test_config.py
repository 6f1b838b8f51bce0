"""Config loading: the example file, the defaults, and one clear line per mistake."""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from providers.caldav import CalDavOptions
from providers.google import GoogleOptions
from providers.memory import MemoryOptions
from providers.microsoft import MicrosoftOptions
from syncd import config
from syncd.assemble import web_settings
from syncd.config import (
    BUNDLED_TEMPLATE,
    Account,
    ConfigError,
    DomainPolicy,
    Settings,
    load,
    load_template,
    parse,
)
from syncd.web.settings import WebSettings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "syncd.example.toml"
CONFIG = Path("/etc/syncd/syncd.toml")

#: In the example, "# key = value" (one space after "#") is a default, and so
#: is a commented "# [[accounts]]" header; prose and indented examples are not.
COMMENTED_SETTING = re.compile(r"^# (\[\[?[a-z_.]+\]\]?|[a-z_]+ = .*)$")

DEFAULT_QUESTIONS = 6
GOOGLE_KEYS = set(GoogleOptions.model_fields)
MICROSOFT_KEYS = set(MicrosoftOptions.model_fields)
MEMORY_KEYS = set(MemoryOptions.model_fields)
CALDAV_KEYS = set(CalDavOptions.model_fields)
PLUGIN_KEYS = GOOGLE_KEYS | MICROSOFT_KEYS | MEMORY_KEYS | CALDAV_KEYS
ACCOUNT_KEYS = {"name", "provider", "calendars", "directory", "directory_exclude"}


def defaults(model: type[BaseModel]) -> dict[str, object]:
    return {name: field.default for name, field in model.model_fields.items()}


def memory(name: str, **options: str) -> Account:
    return Account(name=name, provider="memory", options=MemoryOptions(**options))


def uncommented(
    text: str,
    *,
    google: bool = True,
    microsoft: bool = False,
    memory: bool = False,
    caldav: bool = False,
) -> str:
    """The example with its defaults uncommented, those of the providers asked for."""
    wanted = (
        (GOOGLE_KEYS if google else set())
        | (MICROSOFT_KEYS if microsoft else set())
        | (MEMORY_KEYS if memory else set())
        | (CALDAV_KEYS if caldav else set())
    )

    def line_of(line: str) -> str:
        match = COMMENTED_SETTING.match(line)
        if not match:
            return line
        key = match[1].split(" ", 1)[0]
        if key in PLUGIN_KEYS and key not in wanted:
            return line
        return match[1]

    return "\n".join(line_of(line) for line in text.splitlines())


# --------------------------------------------------------------------------- example file


def test_example_as_shipped_is_all_defaults() -> None:
    assert load(EXAMPLE) == Settings.default(EXAMPLE)


def test_example_with_every_setting_uncommented_still_is_the_defaults() -> None:
    """Each key the example shows is a real key, shown with its real default.

    The one documented difference: the example's ``[[accounts]]`` entry has to
    name the account (``name`` is required), so it yields one memory account
    whose other fields are the defaults. The google-only keys are refused on a
    memory account, so they stay commented here (see the next test).
    """
    text = uncommented(EXAMPLE.read_text(encoding="utf-8"), google=False, memory=True)
    settings = parse(text, EXAMPLE)
    assert dataclasses.replace(settings, accounts=()) == Settings.default(EXAMPLE)
    assert settings.accounts == (memory("demo"),)


def test_example_shows_the_google_defaults() -> None:
    """Each google-only key the example shows has its real default.

    A google account needs more than defaults (a service account file and
    calendars, or a client secrets file), so the example entry is turned into
    the smallest valid single-user account and every other key must come out
    as the default.
    """
    text = uncommented(EXAMPLE.read_text(encoding="utf-8"))
    shown: dict[str, object] = {}
    for line in text.splitlines():
        key = line.split(" ", 1)[0]
        if key in GOOGLE_KEYS:
            shown |= tomllib.loads(line)
    assert shown == defaults(GoogleOptions)
    for old, new in [
        ('provider = "memory"', 'provider = "google"'),
        ('mode = "organization"', 'mode = "single-user"'),
        ('client_secrets_file = ""', 'client_secrets_file = "client.json"'),
    ]:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (account,) = parse(text, EXAMPLE).accounts
    assert (account.name, account.provider, account.calendars) == ("demo", "google", ())
    assert account.options.model_dump() == defaults(GoogleOptions) | {
        "mode": "single-user",
        "client_secrets_file": "client.json",
        "token_file": str(EXAMPLE.parent / "demo.google-grant"),
    }


def test_example_documents_every_key() -> None:
    text = uncommented(
        EXAMPLE.read_text(encoding="utf-8"), microsoft=True, memory=True, caldav=True
    )
    data = tomllib.loads(text)
    sections = {"syncd": config.Core, "sync": config.Sync, "detect": config.Detect}
    sections["people"] = config.People
    sections["web"] = config.Web
    for name, cls in sections.items():
        assert set(data[name]) == set(cls.model_fields), name
    (account,) = data["accounts"]
    assert set(account) == ACCOUNT_KEYS | PLUGIN_KEYS


def test_example_shows_the_caldav_defaults() -> None:
    text = uncommented(EXAMPLE.read_text(encoding="utf-8"), google=False, caldav=True)
    shown: dict[str, object] = {}
    for line in text.splitlines():
        if line.split(" ", 1)[0] in CALDAV_KEYS:
            shown |= tomllib.loads(line)
    assert shown == defaults(CalDavOptions)


def test_example_shows_the_microsoft_defaults() -> None:
    text = uncommented(EXAMPLE.read_text(encoding="utf-8"), google=False, microsoft=True)
    shown: dict[str, object] = {}
    for line in text.splitlines():
        if line.split(" ", 1)[0] in MICROSOFT_KEYS:
            shown |= tomllib.loads(line)
    # token_file is shown empty: the parser fills in a default in single-user mode.
    assert shown == defaults(MicrosoftOptions)


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("", "tenant"),
        ('tenant = "t"\n', "client_id"),
        ('tenant = "t"\nclient_id = "c"\n', "client_secret_file"),
        (
            'tenant = "t"\nclient_id = "c"\nclient_secret_file = "s"\ncalendars = ["a@x"]\n'
            "subscription_minutes = 20000\n",
            "subscription_minutes",
        ),
        (
            'tenant = "t"\nclient_id = "c"\nclient_secret_file = "s"\ncalendars = ["a@x"]\n'
            'graph_root = "https://graph.microsoft.com/beta/"\n',
            "graph_root",
        ),
        ('tenant = "t"\nclient_id = "c"\nclient_secret_file = "s"\n', "calendars"),
    ],
)
def test_microsoft_accounts_name_what_is_missing_or_wrong(extra: str, key: str) -> None:
    text = f'[[accounts]]\nname = "m"\nprovider = "microsoft"\n{extra}'
    with pytest.raises(ConfigError) as caught:
        parse(text, Path("/etc/syncd.toml"))
    assert caught.value.key == f"accounts[0].{key}"
    assert len(str(caught.value).splitlines()) == 1


def test_a_microsoft_key_on_a_google_account_is_refused() -> None:
    text = '[[accounts]]\nname = "g"\nprovider = "google"\ntenant = "t"\n'
    with pytest.raises(ConfigError, match="only microsoft accounts use this key"):
        parse(text, Path("/etc/syncd.toml"))


def test_defaults_in_code() -> None:
    settings = parse("", Path("test.toml"))
    assert settings == Settings.default("test.toml")
    assert settings.path == Path("test.toml").absolute()
    assert settings.syncd.database == f"sqlite:///{Path.cwd() / 'syncd.db'}"
    assert settings.syncd.template == BUNDLED_TEMPLATE
    assert settings.sync.horizon_occurrences == 2 and settings.sync.horizon_days == 14
    assert settings.detect.domain_policy is DomainPolicy.BOTH
    assert settings.detect.resource_domains == ("resource.calendar.google.com",)
    assert settings.syncd.key_file == ""
    assert settings.accounts == ()


# --------------------------------------------------------------------------- values


def test_values_are_read_and_normalised(tmp_path: Path) -> None:
    settings = parse(
        """
        [syncd]
        base_url = "https://agenda.example.org/"
        timezone = "Europe/Berlin"
        dry_run = true
        [sync]
        window_days = 42
        horizon_days = 42
        invite_refresh_lead_minutes = 30
        invite_refresh_gap_minutes = 0
        [detect]
        org_domains = ["@Example.ORG"]
        domain_policy = "any"
        title_include = ["1:1"]
        group_addresses = ["mailto:Team@Example.org"]
        [people.aliases]
        "Ana.Lopez@example.org" = "A@example.org"
        "a@example.org" = "ana@example.org"
        [[accounts]]
        name = "workspace"
        provider = "google"
        calendars = ["ana@example.org"]
        service_account_file = "credential:google-sa"
        [[accounts]]
        name = "fake"
        """,
        tmp_path / "syncd.toml",
    )
    assert settings.syncd.base_url == "https://agenda.example.org"
    assert settings.syncd.zone.key == "Europe/Berlin"
    assert settings.syncd.dry_run is True
    assert settings.sync.window_days == settings.sync.horizon_days == 42
    assert settings.sync.invite_refresh_lead_minutes == 30
    assert settings.sync.invite_refresh_gap_minutes == 0
    assert settings.detect.org_domains == ("example.org",)
    assert settings.detect.group_addresses == ("team@example.org",)
    assert dict(settings.people.aliases) == {
        "ana.lopez@example.org": "ana@example.org",
        "a@example.org": "ana@example.org",
    }
    assert settings.account("workspace").provider == "google"
    assert settings.account("workspace").options.model_dump() == defaults(GoogleOptions) | {
        "service_account_file": "credential:google-sa"
    }
    assert settings.account("fake") == memory("fake")
    assert settings.require_accounts() == settings.accounts


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    directory = tmp_path / "etc" / "syncd"
    settings = parse(
        """
        [syncd]
        database = "sqlite:///data/syncd.db?timeout=5"
        template = "templates/points.md"
        [[accounts]]
        name = "demo"
        state_file = "state/calendars.json"
        """,
        directory / "syncd.toml",
    )
    assert settings.directory == directory
    assert settings.syncd.database == f"sqlite:///{directory}/data/syncd.db?timeout=5"
    assert settings.syncd.template == directory / "templates" / "points.md"
    assert settings.accounts[0].options == MemoryOptions(
        state_file=str(directory / "state" / "calendars.json")
    )


def test_google_accounts_in_both_modes(tmp_path: Path) -> None:
    settings = parse(
        """
        [syncd]
        key_file = "keys/syncd.key"
        [[accounts]]
        name = "workspace"
        provider = "google"
        calendars = ["ana@example.org", "bo@example.org"]
        service_account_file = "sa.json"
        send_updates = "externalOnly"
        webhook_url = "https://agenda.example.org/hooks/google"
        [[accounts]]
        name = "ana"
        provider = "google"
        mode = "single-user"
        client_secrets_file = "credential:google-client"
        api_root = "http://127.0.0.1:8088/calendar/v3/"
        webhook_url = "http://localhost:8080/hooks/google"
        [[accounts]]
        name = "bo"
        provider = "google"
        mode = "single-user"
        client_secrets_file = "client.json"
        token_file = "/var/lib/syncd/bo.grant"
        """,
        tmp_path / "syncd.toml",
    )
    assert settings.syncd.key_file == "keys/syncd.key"  # resolved when used, not here
    workspace, ana, bo = (account.options.model_dump() for account in settings.accounts)
    assert workspace == defaults(GoogleOptions) | {
        "mode": "organization",
        "service_account_file": "sa.json",
        "send_updates": "externalOnly",
        "webhook_url": "https://agenda.example.org/hooks/google",
    }
    assert settings.accounts[0].calendars == ("ana@example.org", "bo@example.org")
    assert ana == defaults(GoogleOptions) | {
        "mode": "single-user",
        "client_secrets_file": "credential:google-client",
        "token_file": str(tmp_path / "ana.google-grant"),
        "api_root": "http://127.0.0.1:8088/calendar/v3/",
        "webhook_url": "http://localhost:8080/hooks/google",
    }
    assert bo["token_file"] == "/var/lib/syncd/bo.grant"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/syncd/syncd.db",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql+psycopg://syncd@db.example.org/syncd",
    ],
)
def test_other_database_urls_are_kept(url: str) -> None:
    settings = parse(f'syncd.database = "{url}"', CONFIG)
    assert settings.syncd.database == url


def test_load_relative_path_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "syncd.toml").write_text('[syncd]\ndatabase = "sqlite:///x.db"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    settings = load("syncd.toml")
    assert settings.path == tmp_path / "syncd.toml"
    assert settings.syncd.database == f"sqlite:///{tmp_path}/x.db"


# --------------------------------------------------------------------------- errors

GOOGLE = '[[accounts]]\nname = "g"\nprovider = "google"\n'
ORGANIZATION = f'{GOOGLE}calendars = ["ana@example.org"]\nservice_account_file = "sa.json"\n'
FERNET_KEY = "x2S2Nqf5vH3kq2ZyXk0nL2mQ7b3o9Zr8eTqYJw1uV4c="

# (case id, TOML text, key named in the error, exact problem or a fragment of it)
ERRORS = [
    ("toml syntax", "[sync\nwindow_days = 3\n", "-", "invalid TOML: "),
    ("toml duplicate key", "[sync]\npage_size = 1\npage_size = 2\n", "-", "(at line 3"),
    (
        "unknown section",
        "[sinc]\nwindow_days = 3\n",
        "sinc",
        "unknown section (did you mean 'sync'?)",
    ),
    (
        "unknown key",
        "[sync]\nhorizon_day = 3\n",
        "sync.horizon_day",
        "unknown key (did you mean 'horizon_days'?)",
    ),
    (
        "key in the wrong section",
        "[syncd]\nwindow_days = 3\n",
        "syncd.window_days",
        "unknown key (it belongs in [sync])",
    ),
    ("unknown key, nothing close", "[detect]\nzzz = 1\n", "detect.zzz", "known: org_domains"),
    (
        "unknown key in an account",
        '[[accounts]]\nname = "a"\nprovder = "memory"\n',
        "accounts[0].provder",
        "unknown key (did you mean 'provider'?)",
    ),
    (
        "wrong type",
        '[sync]\nhorizon_days = "two"\n',
        "sync.horizon_days",
        "expected an integer, got 'two'",
    ),
    (
        "bool is not an int",
        "[sync]\npage_size = true\n",
        "sync.page_size",
        "expected an integer, got true",
    ),
    (
        "float is not an int",
        "[sync]\npast_days = 1.5\n",
        "sync.past_days",
        "expected an integer, got 1.5",
    ),
    (
        "int is not a bool",
        "[syncd]\ndry_run = 1\n",
        "syncd.dry_run",
        "expected true or false, got 1",
    ),
    ("not a string", "[syncd]\ntimezone = 1\n", "syncd.timezone", "expected a string, got 1"),
    (
        "not an array",
        '[detect]\norg_domains = "example.org"\n',
        "detect.org_domains",
        "expected an array of strings, got 'example.org'",
    ),
    (
        "array item",
        '[detect]\ntitle_exclude = ["a", 2]\n',
        "detect.title_exclude[1]",
        "expected a string, got 2",
    ),
    ("section as a value", "sync = 3\n", "sync", "expected a table ([sync]), got 3"),
    (
        "too small",
        "[sync]\nhorizon_occurrences = 0\n",
        "sync.horizon_occurrences",
        "must be at least 1, got 0",
    ),
    ("too large", "[sync]\npage_size = 5000\n", "sync.page_size", "must be at most 2500, got 5000"),
    (
        "push poll shorter than the max poll",
        "[sync]\nmax_poll_seconds = 7200\npush_poll_seconds = 3600\n",
        "sync.push_poll_seconds",
        "must be at least sync.max_poll_seconds (7200)",
    ),
    (
        "invite refresh lead beyond a week",
        "[sync]\ninvite_refresh_lead_minutes = 20000\n",
        "sync.invite_refresh_lead_minutes",
        "must be at most 10080, got 20000",
    ),
    (
        "negative invite refresh gap",
        "[sync]\ninvite_refresh_gap_minutes = -5\n",
        "sync.invite_refresh_gap_minutes",
        "must be at least 0, got -5",
    ),
    (
        "horizon beyond window",
        "[sync]\nwindow_days = 7\nhorizon_days = 14\n",
        "sync.horizon_days",
        "must not exceed sync.window_days (7)",
    ),
    (
        "bad regex",
        '[detect]\ntitle_include = ["1:1", "(one on one"]\n',
        "detect.title_include[1]",
        "bad regular expression '(one on one': missing ), unterminated subpattern",
    ),
    (
        "bad enum",
        '[detect]\ndomain_policy = "all"\n',
        "detect.domain_policy",
        "unknown policy 'all'; expected one of both, any",
    ),
    (
        "bad domain",
        '[detect]\norg_domains = ["ana@example.org"]\n',
        "detect.org_domains[0]",
        "expected a domain name",
    ),
    (
        "bad address",
        '[detect]\ngroup_addresses = ["team"]\n',
        "detect.group_addresses[0]",
        "expected an email address, got 'team'",
    ),
    (
        "bad time zone",
        '[syncd]\ntimezone = "Mars/Olympus"\n',
        "syncd.timezone",
        "unknown time zone",
    ),
    (
        "bad base url",
        '[syncd]\nbase_url = "agenda.example.org"\n',
        "syncd.base_url",
        "expected an http",
    ),
    ("bad database", '[syncd]\ndatabase = "syncd.db"\n', "syncd.database", "SQLAlchemy URL"),
    (
        "accounts as a table",
        '[accounts]\nname = "a"\n',
        "accounts",
        "expected an array of tables ([[accounts]]), got a table",
    ),
    (
        "account without a name",
        '[[accounts]]\nprovider = "google"\n',
        "accounts[0].name",
        "required",
    ),
    (
        "account with an empty name",
        '[[accounts]]\nname = " "\n',
        "accounts[0].name",
        "must not be empty",
    ),
    (
        "duplicate account names",
        '[[accounts]]\nname = "work"\n[[accounts]]\nname = "home"\n[[accounts]]\nname = "Work"\n',
        "accounts[2].name",
        "duplicate account name 'Work' (see accounts[0])",
    ),
    (
        "unknown provider",
        '[[accounts]]\nname = "a"\nprovider = "gogle"\n',
        "accounts[0].provider",
        "unknown provider 'gogle' (did you mean 'google'?); "
        "expected one of google, microsoft, caldav, memory",
    ),
    (
        "a provider that is not there",
        '[[accounts]]\nname = "a"\nprovider = "exchange2010"\n',
        "accounts[0].provider",
        "unknown provider 'exchange2010'; expected one of google, microsoft, caldav, memory",
    ),
    (
        "a caldav account without its server",
        '[[accounts]]\nname = "a"\nprovider = "caldav"\ncalendars = ["ana@example.org"]\n',
        "accounts[0].url",
        "required for provider 'caldav': the server's address",
    ),
    (
        "state file on a real provider",
        f'{ORGANIZATION}state_file = "s.json"\n',
        "accounts[0].state_file",
        "only memory accounts use this key (this account is google)",
    ),
    (
        "google key on a memory account",
        '[[accounts]]\nname = "a"\nsend_updates = "all"\n',
        "accounts[0].send_updates",
        "only google accounts use this key (this account is memory)",
    ),
    (
        "a google and microsoft key on a memory account",
        '[[accounts]]\nname = "a"\nmode = "organization"\n',
        "accounts[0].mode",
        "only google and microsoft accounts use this key (this account is memory)",
    ),
    (
        "google key outside an account",
        '[syncd]\napi_root = "https://www.googleapis.com/calendar/v3/"\n',
        "syncd.api_root",
        "unknown key (it belongs in [[accounts]])",
    ),
    (
        "missing service account file in organization mode",
        f'{GOOGLE}calendars = ["ana@example.org"]\n',
        "accounts[0].service_account_file",
        "required for provider 'google' in organization mode",
    ),
    (
        "empty calendars in organization mode",
        f'{GOOGLE}service_account_file = "sa.json"\n',
        "accounts[0].calendars",
        "required for provider 'google' in organization mode",
    ),
    (
        "missing client secrets in single-user mode",
        f'{GOOGLE}mode = "single-user"\n',
        "accounts[0].client_secrets_file",
        "required for provider 'google' in single-user mode",
    ),
    (
        "bad mode",
        f'{GOOGLE}mode = "single_user"\n',
        "accounts[0].mode",
        "unknown mode 'single_user' (did you mean 'single-user'?)",
    ),
    (
        "service account file in single-user mode",
        f'{GOOGLE}mode = "single-user"\nclient_secrets_file = "c.json"\n'
        'service_account_file = "sa.json"\n',
        "accounts[0].service_account_file",
        "only organization mode uses this key (this account is single-user)",
    ),
    (
        "token file in organization mode",
        f'{ORGANIZATION}token_file = "t.grant"\n',
        "accounts[0].token_file",
        "only single-user mode uses this key (this account is organization)",
    ),
    (
        "token file as a credential",
        f'{GOOGLE}mode = "single-user"\nclient_secrets_file = "c.json"\n'
        'token_file = "credential:grant"\n',
        "accounts[0].token_file",
        "must be a path",
    ),
    (
        "default token file from an account name with a slash",
        '[[accounts]]\nname = "a/b"\nprovider = "google"\nmode = "single-user"\n'
        'client_secrets_file = "c.json"\n',
        "accounts[0].token_file",
        "the default 'a/b.google-grant' is not a plain file name; set token_file",
    ),
    (
        "bad send_updates",
        f'{ORGANIZATION}send_updates = "external"\n',
        "accounts[0].send_updates",
        "unknown value 'external' (did you mean 'externalOnly'?); "
        "expected one of none, all, externalOnly",
    ),
    (
        "api_root not ending in /calendar/v3/",
        f'{ORGANIZATION}api_root = "https://www.googleapis.com/calendar/v3"\n',
        "accounts[0].api_root",
        "must end in '/calendar/v3/'",
    ),
    (
        "api_root not a url",
        f'{ORGANIZATION}api_root = "www.googleapis.com/calendar/v3/"\n',
        "accounts[0].api_root",
        "expected an https:// URL with a host",
    ),
    (
        "api_root over http to a public host",
        f'{ORGANIZATION}api_root = "http://www.googleapis.com/calendar/v3/"\n',
        "accounts[0].api_root",
        "must be https:// (plain http only for localhost or 127.0.0.1)",
    ),
    (
        "http webhook to a public host",
        f'{ORGANIZATION}webhook_url = "http://agenda.example.org/hooks/google"\n',
        "accounts[0].webhook_url",
        "must be https:// (plain http only for localhost or 127.0.0.1)",
    ),
    (
        "webhook with a query",
        f'{ORGANIZATION}webhook_url = "https://agenda.example.org/hooks/google?x=1"\n',
        "accounts[0].webhook_url",
        "must not carry a query or fragment",
    ),
    (
        "credential name climbing out",
        f'{GOOGLE}calendars = ["a@x.org"]\nservice_account_file = "credential:../sa.json"\n',
        "accounts[0].service_account_file",
        "must be a plain file name",
    ),
    (
        "credential without a name",
        '[syncd]\nkey_file = "credential:"\n',
        "syncd.key_file",
        "credential: needs a name",
    ),
    (
        "JSON pasted instead of a path",
        f'{GOOGLE}calendars = ["a@x.org"]\nservice_account_file = \'{{"type": "x"}}\'\n',
        "accounts[0].service_account_file",
        "looks like the file's JSON content",
    ),
    (
        "a literal Fernet key in key_file",
        f'[syncd]\nkey_file = "{FERNET_KEY}"\n',
        "syncd.key_file",
        "looks like a Fernet key itself",
    ),
    (
        "alias loop",
        '[people.aliases]\n"a@x.org" = "b@x.org"\n"B@x.org" = "c@x.org"\n"c@x.org" = "A@x.org"\n',
        'people.aliases."a@x.org"',
        "alias loop: a@x.org -> b@x.org -> c@x.org -> a@x.org",
    ),
    (
        "alias conflict",
        '[people.aliases]\n"a@x.org" = "b@x.org"\n"A@X.org" = "c@x.org"\n',
        'people.aliases."A@X.org"',
        "conflicts with",
    ),
    ("alias target", '[people.aliases]\n"a@x.org" = 3\n', 'people.aliases."a@x.org"', "got 3"),
    ("aliases not a table", "[people]\naliases = []\n", "people.aliases", "expected a table"),
]


@pytest.mark.parametrize(
    ("text", "key", "problem"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_each_mistake_is_one_line_naming_file_key_and_problem(
    text: str, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text, CONFIG)
    error = caught.value
    message = str(error)
    assert "\n" not in message
    assert (error.path, error.key) == (CONFIG, key)
    assert message == f"{CONFIG}: {key}: {error.problem}"
    assert problem in error.problem
    assert FERNET_KEY not in message  # a key pasted by mistake is never echoed


def test_toml_syntax_error_has_the_line_and_column() -> None:
    with pytest.raises(ConfigError) as caught:
        parse('[syncd]\nbase_url = "http://x"\ntimezone = \n', CONFIG)
    assert str(caught.value) == f"{CONFIG}: -: invalid TOML: Invalid value (at line 3, column 12)"


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load(missing)
    assert str(caught.value) == f"{missing}: -: file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load(tmp_path)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "syncd.toml"
    file.write_text("", encoding="utf-8")
    if os.geteuid() == 0:  # root reads any file, so fake what chmod would do

        def refuse(self: Path) -> bytes:
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "read_bytes", refuse)
    file.chmod(0)
    try:
        with pytest.raises(ConfigError) as caught:
            load(file)
    finally:
        file.chmod(0o600)
    assert str(caught.value) == f"{file}: -: cannot read the file: permission denied"


def test_not_utf8(tmp_path: Path) -> None:
    file = tmp_path / "syncd.toml"
    file.write_bytes(b'[syncd]\ntimezone = "\xff"\n')
    with pytest.raises(ConfigError) as caught:
        load(file)
    assert caught.value.key == "-" and "not UTF-8" in caught.value.problem


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    file = tmp_path / "syncd.toml"
    file.write_bytes("\ufeff[sync]\npage_size = 10\n".encode())
    assert load(file).sync.page_size == 10


def test_error_survives_pickling() -> None:
    error = ConfigError(CONFIG, "sync.page_size", "must be at least 1, got 0")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.key == error.key


def test_problem_text_is_kept_on_one_line() -> None:
    error = ConfigError(CONFIG, "syncd.base_url", "first\nsecond")
    assert str(error) == f"{CONFIG}: syncd.base_url: first second"


def test_no_accounts_is_an_error_only_when_accounts_are_needed() -> None:
    settings = Settings.default(CONFIG)
    with pytest.raises(ConfigError) as caught:
        settings.require_accounts()
    assert caught.value.key == "accounts"


# --------------------------------------------------------------------------- template


def test_bundled_template_has_the_six_questions() -> None:
    points = load_template(Settings.default(CONFIG))
    assert len(points) == DEFAULT_QUESTIONS
    assert all(p.endswith("?") and not p.startswith(("-", "*", "#")) for p in points)
    text = " ".join(points).lower()
    for topic in ("top of mind", "opportunit", "support", "obstacle", "career", "feedback"):
        assert topic in text


def test_custom_template(tmp_path: Path) -> None:
    (tmp_path / "points.md").write_text(
        "# Our template\n\n- First point\n* Second point\n   Third, no bullet  \n#comment\n-   \n",
        encoding="utf-8",
    )
    settings = parse('syncd.template = "points.md"', tmp_path / "syncd.toml")
    assert load_template(settings) == ["First point", "Second point", "Third, no bullet"]


def test_missing_template(tmp_path: Path) -> None:
    settings = parse('syncd.template = "gone.md"', tmp_path / "syncd.toml")
    with pytest.raises(ConfigError) as caught:
        load_template(settings)
    error = caught.value
    assert (error.path, error.key) == (tmp_path / "syncd.toml", "syncd.template")
    assert str(tmp_path / "gone.md") in error.problem
    assert "\n" not in str(error)


# --------------------------------------------------------------------------- microsoft single-user

MS_SINGLE = (
    '[[accounts]]\nname = "me"\nprovider = "microsoft"\nmode = "single-user"\n'
    'tenant = "organizations"\nclient_id = "c"\n'
)


def test_microsoft_single_user_defaults_its_token_file() -> None:
    text = f'{MS_SINGLE}calendars = ["ana@example.org"]\n'
    (account,) = parse(text, Path("/etc/syncd/syncd.toml")).accounts
    assert account.options.model_dump() == defaults(MicrosoftOptions) | {
        "mode": "single-user",
        "tenant": "organizations",
        "client_id": "c",
        "token_file": "/etc/syncd/me.msal-cache",
    }
    assert account.calendars == ("ana@example.org",)


def test_microsoft_single_user_token_file_is_relative_to_the_config() -> None:
    text = f'{MS_SINGLE}calendars = ["ana@example.org"]\ntoken_file = "grants/ana.cache"\n'
    (account,) = parse(text, Path("/etc/syncd/syncd.toml")).accounts
    assert account.options.grant() == "/etc/syncd/grants/ana.cache"


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ('calendars = ["a@x.org"]\nclient_secret_file = "s"\n', "client_secret_file", "only"),
        ("", "calendars", "exactly one address"),
        ('calendars = ["a@x.org", "b@x.org"]\n', "calendars", "exactly one address"),
        ('calendars = ["not an address"]\n', "calendars[0]", "email address"),
        ('calendars = ["a@x.org"]\ntoken_file = "credential:x"\n', "token_file", "must be a path"),
    ],
)
def test_microsoft_single_user_errors_name_the_key(extra: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(MS_SINGLE + extra, Path("/etc/syncd.toml"))
    assert caught.value.key == f"accounts[0].{key}"
    assert problem in caught.value.problem
    assert len(str(caught.value).splitlines()) == 1


def test_microsoft_single_user_needs_tenant_and_client_id() -> None:
    text = '[[accounts]]\nname = "me"\nprovider = "microsoft"\nmode = "single-user"\n'
    with pytest.raises(ConfigError) as caught:
        parse(text + 'calendars = ["a@x.org"]\n', Path("/etc/syncd.toml"))
    assert caught.value.key == "accounts[0].tenant"
    with pytest.raises(ConfigError) as caught:
        parse(text + 'tenant = "t"\ncalendars = ["a@x.org"]\n', Path("/etc/syncd.toml"))
    assert caught.value.key == "accounts[0].client_id"


def test_microsoft_organization_refuses_a_token_file() -> None:
    text = (
        '[[accounts]]\nname = "m"\nprovider = "microsoft"\ntenant = "t"\nclient_id = "c"\n'
        'client_secret_file = "s"\ncalendars = ["a@x.org"]\ntoken_file = "m.cache"\n'
    )
    with pytest.raises(ConfigError, match="only single-user mode uses this key") as caught:
        parse(text, Path("/etc/syncd.toml"))
    assert caught.value.key == "accounts[0].token_file"


def test_microsoft_organization_is_unchanged() -> None:
    text = (
        '[[accounts]]\nname = "m"\nprovider = "microsoft"\ntenant = "t"\nclient_id = "c"\n'
        'client_secret_file = "s"\ncalendars = ["a@x.org"]\n'
    )
    (account,) = parse(text, Path("/etc/syncd.toml")).accounts
    assert isinstance(account.options, MicrosoftOptions)
    assert account.options.mode == "organization"
    assert account.options.grant() is None
    assert account.options.secret_files() == {"client_secret_file": "s"}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[web]\nlisten = "8080"\n', "web.listen"),
        ('[web]\nsign_in = "oidc-please"\n', "web.sign_in"),
        ('[web]\ntrusted_proxies = ["proxy.local"]\n', "web.trusted_proxies[0]"),
        ('[web]\nadmins = ["not an address"]\n', "web.admins[0]"),
        ('[web]\nproxy_header = "X Email"\n', "web.proxy_header"),
        ('[web]\ntimezone = "Mars/Olympus_Mons"\n', "web.timezone"),
        ('[web]\ntimezone = "../../etc/passwd"\n', "web.timezone"),
    ],
)
def test_web_settings_errors_name_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text, Path("/etc/syncd.toml"))
    assert caught.value.key == key and len(str(caught.value).splitlines()) == 1


def test_the_demo_sign_in_is_refused_in_a_config_file() -> None:
    """Anyone may be anyone in the demo: no real installation can be talked into it."""
    with pytest.raises(ConfigError) as caught:
        parse('[web]\nsign_in = "demo"\n', Path("/etc/syncd.toml"))
    assert caught.value.key == "web.sign_in" and "only `syncd demo`" in str(caught.value)
    with pytest.raises(ValueError, match="demo"):
        WebSettings(sign_in="demo")  # nor built without the demo's people
    with pytest.raises(ValueError, match="demo"):
        WebSettings(sign_in="link", demo_people=("ana@example.org",))


def test_the_pages_show_times_in_the_web_zone_else_the_syncd_zone() -> None:
    inherited = parse('[syncd]\ntimezone = "Asia/Tokyo"\n', Path("/etc/syncd.toml"))
    assert inherited.web.timezone == ""
    assert web_settings(inherited).zone == "Asia/Tokyo"
    own = parse(
        '[syncd]\ntimezone = "Asia/Tokyo"\n[web]\ntimezone = " Europe/Berlin "\n',
        Path("/etc/syncd.toml"),
    )
    assert own.web.timezone == "Europe/Berlin"
    assert web_settings(own).zone == "Europe/Berlin"
    assert web_settings(parse("", Path("/etc/syncd.toml"))).zone == "UTC"


# --------------------------------------------------------------------------- sign-in


def test_trusted_proxies_take_addresses_and_cidr_ranges() -> None:
    settings = parse(
        '[web]\nsign_in = "proxy-header"\n'
        'trusted_proxies = ["10.0.0.0/8", "fd00::/8", "192.0.2.7", "::1"]\n',
        Path("/etc/syncd.toml"),
    )
    assert settings.web.trusted_proxies == ("10.0.0.0/8", "fd00::/8", "192.0.2.7", "::1")
    assert web_settings(settings).trusted_proxies == settings.web.trusted_proxies


@pytest.mark.parametrize(
    ("proxy", "problem"),
    [
        ("proxy.local", "not an IP address or CIDR range"),
        ("10.0.0.0/33", "not an IP address or CIDR range"),
        ("10.0.0.1/8", "did you mean '10.0.0.0/8'?"),
        ("fd00::1/8", "did you mean 'fd00::/8'?"),
    ],
)
def test_a_bad_trusted_proxy_is_one_line_naming_the_entry(proxy: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(f'[web]\ntrusted_proxies = ["::1", "{proxy}"]\n', Path("/etc/syncd.toml"))
    assert caught.value.key == "web.trusted_proxies[1]"
    assert problem in str(caught.value) and len(str(caught.value).splitlines()) == 1


TENANT = "11111111-2222-3333-4444-555555555555"
OIDC = '[web]\nsign_in = "oidc"\n[web.oidc]\nsession_secret_file = "credential:session"\n'


def test_oidc_sign_in_is_read_with_both_providers() -> None:
    settings = parse(
        OIDC + 'providers = ["google", "microsoft"]\ngoogle_client_file = "google.json"\n'
        f'microsoft_tenant = "{TENANT}"\nmicrosoft_client_id = "app"\n'
        'microsoft_client_secret_file = "credential:graph"\nsession_hours = 8\n',
        Path("/etc/syncd/syncd.toml"),
    )
    oidc = settings.web.oidc
    assert settings.web.sign_in is config.SignIn.OIDC
    assert oidc.providers == ("google", "microsoft") and oidc.session_hours == 8
    assert oidc.google_client_file == "google.json"
    assert oidc.google_certs_url == "https://www.googleapis.com/oauth2/v1/certs"
    assert (oidc.microsoft_tenant, oidc.microsoft_client_id) == (TENANT, "app")


def test_oidc_keys_are_not_required_in_another_sign_in_mode() -> None:
    settings = parse('[web.oidc]\nproviders = ["google"]\n', Path("/etc/syncd.toml"))
    assert settings.web.sign_in is config.SignIn.LINK
    assert web_settings(settings).oidc is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[web]\nsign_in = "oidc"\n', "web.oidc.providers"),
        (
            '[web]\nsign_in = "oidc"\n[web.oidc]\nproviders = ["google"]\n',
            "web.oidc.session_secret_file",
        ),
        (OIDC + 'providers = ["github"]\n', "web.oidc.providers[0]"),
        (OIDC + 'providers = ["google"]\n', "web.oidc.google_client_file"),
        (OIDC + 'providers = ["microsoft"]\n', "web.oidc.microsoft_tenant"),
        (
            OIDC + 'providers = ["microsoft"]\nmicrosoft_tenant = "common"\n',
            "web.oidc.microsoft_tenant",
        ),
        (
            OIDC + f'providers = ["microsoft"]\nmicrosoft_tenant = "{TENANT}"\n',
            "web.oidc.microsoft_client_id",
        ),
        (
            OIDC + f'providers = ["microsoft"]\nmicrosoft_tenant = "{TENANT}"\n'
            'microsoft_client_id = "app"\n',
            "web.oidc.microsoft_client_secret_file",
        ),
        ("[web.oidc]\nsession_hours = 0\n", "web.oidc.session_hours"),
        ('[web.oidc]\ngoogle_certs_url = "http://certs.example/"\n', "web.oidc.google_certs_url"),
        (OIDC + 'client_id = "x"\n', "web.oidc.client_id"),
        ('[web]\noidc = "google"\n', "web.oidc"),
        (
            OIDC + 'providers = ["google"]\ngoogle_client_file = "{\\"web\\": {}}"\n',
            "web.oidc.google_client_file",
        ),
    ],
)
def test_oidc_mistakes_are_one_line_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text, Path("/etc/syncd.toml"))
    assert caught.value.key == key and len(str(caught.value).splitlines()) == 1


def test_example_documents_every_oidc_key() -> None:
    text = uncommented(
        EXAMPLE.read_text(encoding="utf-8"), microsoft=True, memory=True, caldav=True
    )
    data = tomllib.loads(text)
    assert set(data["web"]["oidc"]) == set(config.WebOidc.model_fields)


def test_oidc_secrets_are_read_when_the_web_app_starts(tmp_path: Path) -> None:
    from syncd.secrets import SecretError

    path = tmp_path / "syncd.toml"
    path.write_text(
        '[web]\nsign_in = "oidc"\n[web.oidc]\nproviders = ["microsoft"]\n'
        f'session_secret_file = "session.secret"\nmicrosoft_tenant = "{TENANT}"\n'
        'microsoft_client_id = "app"\nmicrosoft_client_secret_file = "graph.secret"\n',
        encoding="utf-8",
    )
    settings = load(path)  # loading reads no secret: `syncd doctor` works without them
    (tmp_path / "graph.secret").write_text("s3cr3t-value\n", encoding="utf-8")
    (tmp_path / "graph.secret").chmod(0o600)
    with pytest.raises(SecretError, match=r"web\.oidc\.session_secret_file: .*does not exist"):
        web_settings(settings)
    secret = tmp_path / "session.secret"
    secret.write_text("too short\n", encoding="utf-8")
    secret.chmod(0o600)
    with pytest.raises(SecretError, match="fewer than 32 bytes"):
        web_settings(settings)
    secret.write_text("x" * 48 + "\n", encoding="utf-8")
    secret.chmod(0o644)
    with pytest.raises(SecretError, match="accessible to others") as caught:
        web_settings(settings)
    assert "x" * 48 not in str(caught.value)
    secret.chmod(0o600)
    web = web_settings(settings)
    assert web.sign_in == "oidc" and web.oidc is not None and web.oidc.microsoft is not None
    assert web.oidc.microsoft.client_secret == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(web) and "x" * 48 not in repr(web)
