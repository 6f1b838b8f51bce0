"""TOML configuration -> frozen, typed settings.

Everything that reads settings sees these dataclasses, never raw TOML, so a
value is validated once, here, and a typo cannot silently fall back to a
default somewhere deep in the engine. A bad file is reported as a single
``ConfigError`` whose text is one line, ``<file>: <key>: <problem>``, because
that is what an operator sees in ``journalctl`` when the daemon exits with
status 2 and it has to point straight at the fix.

Relative paths (the SQLite file, the template, a memory provider's state file)
are resolved against the directory of the config file, not the working
directory: a systemd unit and an operator's shell start in different places
and must see the same files.

Defaults live in the dataclass fields and nowhere else; the parser asks a
default instance for them, and ``config/syncd.example.toml`` repeats them in
comments (a unit test keeps the two in step).
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from types import MappingProxyType
from typing import NoReturn, TypeVar, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationError

import providers
import providers.base
from providers.options import (
    CREDENTIAL_PREFIX,
    OptionProblem,
    Where,
    credential_name,
    credential_name_problem,
    fold_address,
)

__all__ = [
    "CREDENTIAL_PREFIX",
    "Account",
    "ConfigError",
    "Settings",
    "credential_name",
    "credential_name_problem",
    "fold_address",
    "load",
    "parse",
]

#: Used when ``syncd.template`` is empty. It ships inside the package (not under
#: ``config/``, which holds examples an admin copies and is not installed), so a
#: non-editable install run from any folder finds it.
BUNDLED_TEMPLATE = Path(__file__).resolve().parent / "templates" / "default.md"

_SQLITE_URL = re.compile(r"^(?P<scheme>sqlite(?:\+[\w-]+)?):///(?P<rest>.*)$", re.IGNORECASE)
_ANY_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$")
_DOMAIN = re.compile(r"^[^@\s/:]+$")
#: What ``Fernet.generate_key()`` returns: 32 bytes, url-safe base64, padded.
_FERNET_KEY = re.compile(r"^[A-Za-z0-9_-]{43}=$")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


class ConfigError(Exception):
    """A problem with the configuration file, pinned to one key.

    The three parts are kept separately so that ``syncd doctor`` and tests can
    inspect them, while ``str()`` stays a single line for logs.
    """

    path: Path
    key: str
    problem: str

    def __init__(self, path: Path, key: str, problem: str) -> None:
        # Positional args keep the exception picklable (it crosses process pools).
        super().__init__(path, key, problem)
        self.path = path
        self.key = _one_line(key)
        self.problem = _one_line(problem)

    def __str__(self) -> str:
        return f"{self.path}: {self.key}: {self.problem}"


class DomainPolicy(enum.StrEnum):
    """How many of a pair must be inside ``org_domains`` for the pair to count."""

    BOTH = "both"
    ANY = "any"


@dataclass(frozen=True, slots=True)
class Core:
    """``[syncd]``: process-wide settings."""

    database: str = "sqlite:///syncd.db"
    base_url: str = "http://localhost:8080"
    timezone: str = "UTC"
    template: Path = BUNDLED_TEMPLATE
    #: Unchecked talking points of an ended meeting reappear in the pair's next one.
    carry_talking_points: bool = True
    dry_run: bool = False
    #: Where the Fernet key that seals secrets at rest is: a path or
    #: ``credential:NAME``, kept unresolved because ``$CREDENTIALS_DIRECTORY``
    #: exists only inside the service (``syncd.secrets.resolve`` reads it).
    key_file: str = ""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class Sync:
    """``[sync]``: how much of each calendar one sync reads and writes."""

    window_days: int = 28
    past_days: int = 1
    horizon_occurrences: int = 2
    horizon_days: int = 14
    max_write_attempts: int = 3
    page_size: int = 250
    poll_seconds: int = 300
    max_poll_seconds: int = 3600
    push_poll_seconds: int = 21600
    lease_seconds: int = 120
    concurrency: int = 8
    shutdown_grace_seconds: int = 30
    invite_refresh_lead_minutes: int = 120
    invite_refresh_gap_minutes: int = 180


@dataclass(frozen=True, slots=True)
class Detect:
    """``[detect]``: the rules that decide whether an event is a 1:1.

    Title patterns are kept as source text; ``syncd.detect.Rules`` compiles
    them (they are known to compile, this module checked).
    """

    org_domains: tuple[str, ...] = ()
    domain_policy: DomainPolicy = DomainPolicy.BOTH
    title_include: tuple[str, ...] = ()
    title_exclude: tuple[str, ...] = ()
    opt_out_marker: str = "#noagenda"
    group_addresses: tuple[str, ...] = ()
    resource_domains: tuple[str, ...] = ("resource.calendar.google.com",)


@dataclass(frozen=True, slots=True)
class People:
    """``[people]``: who is who across several addresses.

    ``aliases`` is flat (every alias maps straight to its final canonical
    address, chains followed) and case-folded, so a lookup is one step.
    """

    aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)


class SignIn(enum.StrEnum):
    """How the agenda pages know who is looking."""

    #: The token in the invite alone opens the agenda; private notes are off.
    LINK = "link"
    #: An authenticating proxy in front of syncd names the person in a header.
    PROXY_HEADER = "proxy-header"
    #: People sign in with Google or Microsoft (``[web.oidc]``).
    OIDC = "oidc"


#: Where Google publishes the certificates its ID tokens are signed with.
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
OIDC_PROVIDERS = ("google", "microsoft")
_TENANT_ID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


@dataclass(frozen=True, slots=True)
class WebOidc:
    """``[web.oidc]``: sign-in with Google and/or Microsoft (``sign_in = "oidc"``).

    Secrets are named (a path or ``credential:NAME``), never held: they are
    read when the web app starts (``syncd.assemble.web_settings``).
    """

    providers: tuple[str, ...] = ()
    session_secret_file: str = ""
    session_hours: int = 12
    #: The "Web application" OAuth client's JSON from the Google Cloud console.
    google_client_file: str = ""
    google_certs_url: str = GOOGLE_CERTS_URL
    #: The directory (tenant) id: one organization's accounts only.
    microsoft_tenant: str = ""
    microsoft_client_id: str = ""
    microsoft_client_secret_file: str = ""


@dataclass(frozen=True, slots=True)
class Web:
    """``[web]``: the agenda pages, the JSON API and the provider webhooks."""

    listen: str = "127.0.0.1:8080"
    sign_in: SignIn = SignIn.LINK
    proxy_header: str = "X-Forwarded-Email"
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    admins: tuple[str, ...] = ()
    secure_cookies: bool = True
    #: IANA zone the pages show times in; "" means ``[syncd] timezone``.
    timezone: str = ""
    oidc: WebOidc = field(default_factory=WebOidc)

    @property
    def address(self) -> tuple[str, int]:
        """``listen`` as a host (IPv6 without its brackets) and a port; checked at parse."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


#: One ``[[accounts]]`` entry (the provider's own keys in ``options``).
Account = providers.base.Account


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole configuration; ``path`` is the (absolute) file it came from."""

    path: Path
    syncd: Core = field(default_factory=Core)
    sync: Sync = field(default_factory=Sync)
    detect: Detect = field(default_factory=Detect)
    people: People = field(default_factory=People)
    accounts: tuple[Account, ...] = ()
    web: Web = field(default_factory=Web)

    @classmethod
    def default(cls, path: str | Path = "syncd.toml") -> Settings:
        """All defaults, with relative paths resolved as if read from ``path``."""
        return parse("", Path(path))

    @property
    def directory(self) -> Path:
        return self.path.parent

    def account(self, name: str) -> Account:
        for account in self.accounts:
            if account.name == name:
                return account
        raise KeyError(name)

    def require_accounts(self) -> tuple[Account, ...]:
        """The accounts, for commands that cannot do anything without one."""
        if not self.accounts:
            raise ConfigError(
                self.path, "accounts", "no [[accounts]] entry; sync needs at least one"
            )
        return self.accounts


def load(path: str | Path) -> Settings:
    """Read and validate a config file; any failure is one ``ConfigError``."""
    file = Path(path).expanduser().absolute()
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(file, "-", "file not found") from None
    except IsADirectoryError:
        raise ConfigError(file, "-", "is a directory, not a file") from None
    except PermissionError:
        raise ConfigError(file, "-", "cannot read the file: permission denied") from None
    except OSError as exc:
        raise ConfigError(file, "-", f"cannot read the file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(file, "-", f"not UTF-8 text (bad byte at offset {exc.start})") from None
    return parse(text, file)


def parse(text: str, path: str | Path) -> Settings:
    """Validate TOML text as if it had been read from ``path``.

    ``path`` only names the file in errors and anchors relative paths, which
    is what lets tests build settings without touching the disk.
    """
    file = Path(path).expanduser().absolute()
    try:
        data = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "-", f"invalid TOML: {exc}") from None
    return _Parser(file).settings(data)


def load_template(settings: Settings) -> list[str]:
    """The talking points a new pair starts with, from ``syncd.template``.

    The template is markdown so that people can edit it as a list: each
    non-empty line is one point, bullets are decoration, ``#`` lines are
    headings or comments.
    """
    file = settings.syncd.template
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(settings.path, "syncd.template", f"file not found: {file}") from None
    except UnicodeDecodeError:
        raise ConfigError(settings.path, "syncd.template", f"not UTF-8 text: {file}") from None
    except OSError as exc:
        raise ConfigError(
            settings.path, "syncd.template", f"cannot read {file}: {exc.strerror or exc}"
        ) from None
    points: list[str] = []
    for line in text.splitlines():
        point = line.strip()
        if point in ("", "-", "*") or point.startswith("#"):
            continue
        if point.startswith(("- ", "* ")):
            point = point[2:].strip()
        if point:
            points.append(point)
    return points


# --------------------------------------------------------------------------- parsing

_SECTIONS: Mapping[str, type] = {
    "syncd": Core,
    "sync": Sync,
    "detect": Detect,
    "people": People,
    "web": Web,
}
_ACCOUNTS = "accounts"
#: The keys every ``[[accounts]]`` table may have; the rest belong to its provider.
_ACCOUNT_KEYS = ("name", "provider", "calendars", "directory", "directory_exclude")
_Choice = TypeVar("_Choice", bound=enum.StrEnum)


def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _one_line(text: str) -> str:
    return " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text


def _show(value: object) -> str:
    """A value as the user wrote it in TOML, short enough for one log line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = repr(value)
        return shown if len(shown) <= 60 else shown[:56] + "...'"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime | date | time):
        return f"a date/time ({value.isoformat()})"
    return repr(value)


def _key(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


class _Parser:
    """Validation with the file's path at hand, so every failure can name it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.directory = path.parent

    def fail(self, key: str, problem: str) -> NoReturn:
        raise ConfigError(self.path, key, problem)

    # ---- structure

    def settings(self, data: Mapping[str, object]) -> Settings:
        self.check_keys(data, "", (*_SECTIONS, _ACCOUNTS))
        core = self.core(self.section(data, "syncd"))
        sync = self.sync(self.section(data, "sync"))
        detect = self.detect(self.section(data, "detect"))
        people = self.people(self.section(data, "people"))
        accounts = self.accounts(data.get(_ACCOUNTS, []))
        web = self.web(self.section(data, "web"))
        return Settings(self.path, core, sync, detect, people, accounts, web)

    def web(self, table: Mapping[str, object]) -> Web:
        d, p = Web(), "web"
        listen = self.string(table, p, "listen", d.listen).strip()
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            self.fail("web.listen", f"expected HOST:PORT, got {_show(listen)}")
        header = self.string(table, p, "proxy_header", d.proxy_header).strip()
        if not re.fullmatch(r"[A-Za-z0-9-]+", header):
            self.fail("web.proxy_header", f"not a header name: {_show(header)}")
        proxies = self.strings(table, p, "trusted_proxies", d.trusted_proxies)
        for i, proxy in enumerate(proxies):
            self.proxy(f"web.trusted_proxies[{i}]", proxy)
        admins = tuple(
            self.address(f"web.admins[{i}]", admin)
            for i, admin in enumerate(self.strings(table, p, "admins", d.admins))
        )
        timezone = self.string(table, p, "timezone", d.timezone).strip()
        if timezone:
            try:
                ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError):
                self.fail(
                    "web.timezone",
                    f"unknown time zone {_show(timezone)} (expected an IANA name such as "
                    "'Europe/Berlin', or \"\" for [syncd] timezone)",
                )
        if table.get("sign_in") == "demo":
            self.fail(
                "web.sign_in",
                "'demo' lets anyone be anyone, so only `syncd demo` offers it; "
                "expected one of link, proxy-header, oidc",
            )
        sign_in = self.choice(table, p, "sign_in", d.sign_in, "sign-in mode")
        oidc_table = table.get("oidc", {})
        if not isinstance(oidc_table, dict):
            self.fail("web.oidc", f"expected a table ([web.oidc]), got {_show(oidc_table)}")
        return Web(
            listen=listen,
            sign_in=sign_in,
            proxy_header=header,
            trusted_proxies=proxies,
            admins=admins,
            secure_cookies=self.boolean(table, p, "secure_cookies", d.secure_cookies),
            timezone=timezone,
            oidc=self.web_oidc(oidc_table, required=sign_in is SignIn.OIDC),
        )

    def proxy(self, name: str, raw: str) -> None:
        """One trusted proxy: an address, or a CIDR range of them."""
        try:
            ipaddress.ip_network(raw.strip(), strict=True)
        except ValueError:
            try:
                network = ipaddress.ip_network(raw.strip(), strict=False)
            except ValueError:
                self.fail(
                    name,
                    f"not an IP address or CIDR range (such as '10.0.0.0/8'): {_show(raw)}",
                )
            self.fail(name, f"{_show(raw)} has host bits set; did you mean '{network}'?")

    def web_oidc(self, table: Mapping[str, object], *, required: bool) -> WebOidc:
        """``[web.oidc]``; what a provider needs is required only when it is listed."""
        d, p = WebOidc(), "web.oidc"
        self.check_keys(table, p, _fields(WebOidc))
        providers = self.strings(table, p, "providers", d.providers)
        for i, provider in enumerate(providers):
            if provider not in OIDC_PROVIDERS:
                self.fail(
                    f"web.oidc.providers[{i}]",
                    f"unknown provider {_show(provider)}; expected one of "
                    f"{', '.join(OIDC_PROVIDERS)}",
                )
        if required and not providers:
            self.fail(
                "web.oidc.providers",
                'sign_in = "oidc" needs at least one of google, microsoft',
            )

        def secret(key: str, needed: bool, what: str) -> str:
            value = self.secret_source(f"{p}.{key}", self.string(table, p, key, ""))
            if needed and not value:
                self.fail(f"{p}.{key}", f"required: {what}, a path or credential:NAME")
            return value

        google = required and "google" in providers
        microsoft = required and "microsoft" in providers
        tenant = self.string(table, p, "microsoft_tenant", d.microsoft_tenant).strip()
        if microsoft and not _TENANT_ID.match(tenant):
            self.fail(
                "web.oidc.microsoft_tenant",
                f"expected the directory (tenant) id, a GUID, got {_show(tenant)}; sign-in "
                "trusts the addresses of one organization's accounts only",
            )
        client_id = self.string(table, p, "microsoft_client_id", d.microsoft_client_id).strip()
        if microsoft and not client_id:
            self.fail("web.oidc.microsoft_client_id", "required: the application (client) id")
        certs_url = self.string(table, p, "google_certs_url", d.google_certs_url)
        return WebOidc(
            providers=providers,
            session_secret_file=secret(
                "session_secret_file", required, "the file holding the session secret"
            ),
            session_hours=self.integer(table, p, "session_hours", d.session_hours, 1, 720),
            google_client_file=secret(
                "google_client_file", google, "the Web application client's JSON"
            ),
            google_certs_url=self.url("web.oidc.google_certs_url", certs_url),
            microsoft_tenant=tenant,
            microsoft_client_id=client_id,
            microsoft_client_secret_file=secret(
                "microsoft_client_secret_file", microsoft, "the app registration's client secret"
            ),
        )

    def section(self, data: Mapping[str, object], name: str) -> Mapping[str, object]:
        table = data.get(name, {})
        if not isinstance(table, dict):
            self.fail(name, f"expected a table ([{name}]), got {_show(table)}")
        self.check_keys(table, name, _fields(_SECTIONS[name]))
        return table

    def check_keys(self, table: Mapping[str, object], prefix: str, known: Sequence[str]) -> None:
        for key in table:
            if key not in known:
                self.fail(_key(prefix, key), self.unknown(key, prefix, known))

    def unknown(self, key: str, prefix: str, known: Sequence[str]) -> str:
        what = "unknown section" if not prefix else "unknown key"
        by_lower = {k.lower(): k for k in known}
        close = difflib.get_close_matches(key.lower(), list(by_lower), n=1)
        if close:
            return f"{what} (did you mean '{by_lower[close[0]]}'?)"
        section = prefix.split("[", 1)[0]
        owners = [(name, _fields(cls)) for name, cls in _SECTIONS.items()]
        account_keys = (
            *_ACCOUNT_KEYS,
            *(k for n in providers.NAMES for k in providers.plugin(n).options.model_fields),
        )
        for name, keys in (*owners, (_ACCOUNTS, account_keys)):
            if name != section and key in keys:
                where = "[[accounts]]" if name == _ACCOUNTS else f"[{name}]"
                return f"{what} (it belongs in {where})"
        return f"{what}; known: {', '.join(known)}"

    # ---- scalars

    def integer(
        self, table: Mapping[str, object], prefix: str, key: str, default: int, low: int, high: int
    ) -> int:
        if key not in table:
            return default
        value = table[key]
        name = _key(prefix, key)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, f"expected an integer, got {_show(value)}")
        if value < low:
            self.fail(name, f"must be at least {low}, got {value}")
        if value > high:
            self.fail(name, f"must be at most {high}, got {value}")
        return value

    def string(self, table: Mapping[str, object], prefix: str, key: str, default: str) -> str:
        if key not in table:
            return default
        value = table[key]
        if not isinstance(value, str):
            self.fail(_key(prefix, key), f"expected a string, got {_show(value)}")
        return value

    def boolean(self, table: Mapping[str, object], prefix: str, key: str, default: bool) -> bool:
        if key not in table:
            return default
        value = table[key]
        if not isinstance(value, bool):
            self.fail(_key(prefix, key), f"expected true or false, got {_show(value)}")
        return value

    def strings(
        self, table: Mapping[str, object], prefix: str, key: str, default: tuple[str, ...]
    ) -> tuple[str, ...]:
        if key not in table:
            return default
        value = table[key]
        name = _key(prefix, key)
        if not isinstance(value, list):
            self.fail(name, f"expected an array of strings, got {_show(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{name}[{index}]", f"expected a string, got {_show(item)}")
        return tuple(value)

    def choice(
        self,
        table: Mapping[str, object],
        prefix: str,
        key: str,
        default: _Choice,
        noun: str = "value",
    ) -> _Choice:
        if key not in table:
            return default
        value = table[key]
        name = _key(prefix, key)
        options = [member.value for member in type(default)]
        listed = ", ".join(options)
        if not isinstance(value, str):
            self.fail(name, f"expected a string (one of {listed}), got {_show(value)}")
        if value in options:
            return type(default)(value)
        close = difflib.get_close_matches(value.lower(), options, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        self.fail(name, f"unknown {noun} {_show(value)}{hint}; expected one of {listed}")

    # ---- domain values

    def address(self, name: str, raw: str) -> str:
        folded = fold_address(raw)
        if not _ADDRESS.match(folded):
            self.fail(name, f"expected an email address, got {_show(raw)}")
        return folded

    def domain(self, name: str, raw: str) -> str:
        folded = raw.strip().removeprefix("@").casefold().strip(".")
        if not folded or not _DOMAIN.match(folded):
            self.fail(name, f"expected a domain name such as 'example.org', got {_show(raw)}")
        return folded

    def regex(self, name: str, pattern: str) -> str:
        try:
            re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            self.fail(name, f"bad regular expression {_show(pattern)}: {exc}")
        return pattern

    def file_path(self, raw: str) -> Path:
        return self.directory / Path(raw).expanduser()

    def secret_source(self, name: str, raw: str) -> str:
        """A path or ``credential:NAME``, checked but left unresolved."""
        value = raw.strip()
        credential = credential_name(value)
        if credential is not None:
            problem = credential_name_problem(credential)
            if problem:
                self.fail(name, problem)
        elif value.startswith("{"):
            # Never echo it: this is the secret itself, pasted in.
            self.fail(name, "looks like the file's JSON content; give its path or credential:NAME")
        return value

    def url(self, name: str, raw: str) -> str:
        """An https address; plain http only to this machine, where nobody can listen in."""
        value = raw.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.fail(name, f"expected an https:// URL with a host, got {_show(value)}")
        if parts.query or parts.fragment:
            self.fail(name, f"must not carry a query or fragment: {_show(value)}")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            self.fail(
                name,
                f"must be https:// (plain http only for localhost or 127.0.0.1), "
                f"got {_show(value)}",
            )
        return value

    # ---- sections

    def core(self, table: Mapping[str, object]) -> Core:
        d, p = Core(), "syncd"
        database = self.string(table, p, "database", d.database).strip()
        if not _ANY_URL.match(database):
            self.fail(
                "syncd.database",
                "expected a SQLAlchemy URL such as 'sqlite:///syncd.db' or "
                f"'postgresql+psycopg://host/syncd', got {_show(database)}",
            )
        base_url = self.string(table, p, "base_url", d.base_url).strip()
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.fail(
                "syncd.base_url",
                f"expected an http:// or https:// URL with a host, got {_show(base_url)}",
            )
        if parts.query or parts.fragment:
            self.fail("syncd.base_url", f"must not carry a query or fragment: {_show(base_url)}")
        timezone = self.string(table, p, "timezone", d.timezone).strip()
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(
                "syncd.timezone",
                f"unknown time zone {_show(timezone)} (expected an IANA name such as "
                "'Europe/Berlin' or 'UTC')",
            )
        template_text = self.string(table, p, "template", "").strip()
        template = self.file_path(template_text) if template_text else BUNDLED_TEMPLATE
        return Core(
            database=self.resolve_database(database),
            base_url=base_url.rstrip("/"),
            timezone=timezone,
            template=template,
            carry_talking_points=self.boolean(
                table, p, "carry_talking_points", d.carry_talking_points
            ),
            dry_run=self.boolean(table, p, "dry_run", d.dry_run),
            key_file=self.key_file(self.string(table, p, "key_file", d.key_file)),
        )

    def key_file(self, raw: str) -> str:
        if _FERNET_KEY.match(raw.strip()):
            # The message must not repeat the value: it is the key.
            self.fail(
                "syncd.key_file",
                "looks like a Fernet key itself; keys never go into the config file: "
                "name the file that holds it (`syncd keygen` writes one) or use credential:NAME",
            )
        return self.secret_source("syncd.key_file", raw)

    def resolve_database(self, url: str) -> str:
        """Anchor a relative SQLite path at the config directory.

        In-memory databases, absolute paths and ``file:`` URIs are left alone.
        """
        match = _SQLITE_URL.match(url)
        if not match:
            return url
        rest = match["rest"]
        file_part, question, query = rest.partition("?")
        if not file_part or file_part == ":memory:" or file_part.startswith(("/", "file:")):
            return url
        resolved = (self.directory / file_part).as_posix()
        return f"{match['scheme']}:///{resolved}{question}{query}"

    def sync(self, table: Mapping[str, object]) -> Sync:
        d, p = Sync(), "sync"
        window_days = self.integer(table, p, "window_days", d.window_days, 1, 366)
        horizon_days = self.integer(table, p, "horizon_days", d.horizon_days, 1, 366)
        if horizon_days > window_days:
            self.fail(
                "sync.horizon_days",
                f"must not exceed sync.window_days ({window_days}); "
                "occurrences beyond the window are never read",
            )
        poll_seconds = self.integer(table, p, "poll_seconds", d.poll_seconds, 1, 86400)
        max_poll_seconds = self.integer(
            table, p, "max_poll_seconds", d.max_poll_seconds, 1, 7 * 86400
        )
        if max_poll_seconds < poll_seconds:
            self.fail(
                "sync.max_poll_seconds",
                f"must be at least sync.poll_seconds ({poll_seconds})",
            )
        push_poll_seconds = self.integer(
            table, p, "push_poll_seconds", d.push_poll_seconds, 1, 7 * 86400
        )
        if push_poll_seconds < max_poll_seconds:
            self.fail(
                "sync.push_poll_seconds",
                f"must be at least sync.max_poll_seconds ({max_poll_seconds})",
            )
        return Sync(
            window_days=window_days,
            past_days=self.integer(table, p, "past_days", d.past_days, 0, 366),
            horizon_occurrences=self.integer(
                table, p, "horizon_occurrences", d.horizon_occurrences, 1, 100
            ),
            horizon_days=horizon_days,
            max_write_attempts=self.integer(
                table, p, "max_write_attempts", d.max_write_attempts, 1, 20
            ),
            page_size=self.integer(table, p, "page_size", d.page_size, 1, 2500),
            poll_seconds=poll_seconds,
            max_poll_seconds=max_poll_seconds,
            push_poll_seconds=push_poll_seconds,
            lease_seconds=self.integer(table, p, "lease_seconds", d.lease_seconds, 2, 3600),
            concurrency=self.integer(table, p, "concurrency", d.concurrency, 1, 64),
            shutdown_grace_seconds=self.integer(
                table, p, "shutdown_grace_seconds", d.shutdown_grace_seconds, 0, 3600
            ),
            invite_refresh_lead_minutes=self.integer(
                table, p, "invite_refresh_lead_minutes", d.invite_refresh_lead_minutes, 0, 10080
            ),
            invite_refresh_gap_minutes=self.integer(
                table, p, "invite_refresh_gap_minutes", d.invite_refresh_gap_minutes, 0, 10080
            ),
        )

    def detect(self, table: Mapping[str, object]) -> Detect:
        d, p = Detect(), "detect"

        def each(
            key: str, default: tuple[str, ...], check: Callable[[str, str], str]
        ) -> tuple[str, ...]:
            values = self.strings(table, p, key, default)
            return tuple(check(f"{p}.{key}[{i}]", value) for i, value in enumerate(values))

        return Detect(
            org_domains=each("org_domains", d.org_domains, self.domain),
            domain_policy=self.choice(table, p, "domain_policy", d.domain_policy, "policy"),
            title_include=each("title_include", d.title_include, self.regex),
            title_exclude=each("title_exclude", d.title_exclude, self.regex),
            opt_out_marker=self.string(table, p, "opt_out_marker", d.opt_out_marker).strip(),
            group_addresses=each("group_addresses", d.group_addresses, self.address),
            resource_domains=each("resource_domains", d.resource_domains, self.domain),
        )

    def people(self, table: Mapping[str, object]) -> People:
        raw = table.get("aliases", {})
        if not isinstance(raw, dict):
            self.fail("people.aliases", f"expected a table of addresses, got {_show(raw)}")
        direct: dict[str, str] = {}
        spelled: dict[str, str] = {}
        for raw_alias, raw_target in raw.items():
            name = f'people.aliases."{raw_alias}"'
            if not isinstance(raw_target, str):
                self.fail(name, f"expected an email address, got {_show(raw_target)}")
            alias = self.address(name, raw_alias)
            target = self.address(name, raw_target)
            if alias in direct and direct[alias] != target:
                self.fail(
                    name,
                    f"conflicts with people.aliases.\"{spelled[alias]}\" = '{direct[alias]}' "
                    "(addresses are compared case-insensitively)",
                )
            if alias != target:
                direct[alias] = target
                spelled.setdefault(alias, raw_alias)
        flat: dict[str, str] = {}
        for alias, target in direct.items():
            chain = [alias]
            while target in direct:
                if target in chain:
                    loop = " -> ".join([*chain, target])
                    self.fail(f'people.aliases."{spelled[alias]}"', f"alias loop: {loop}")
                chain.append(target)
                target = direct[target]
            flat[alias] = target
        return People(aliases=MappingProxyType(flat))

    def accounts(self, raw: object) -> tuple[Account, ...]:
        if not isinstance(raw, list):
            self.fail(_ACCOUNTS, f"expected an array of tables ([[accounts]]), got {_show(raw)}")
        accounts: list[Account] = []
        seen: dict[str, int] = {}
        for index, entry in enumerate(raw):
            p = f"{_ACCOUNTS}[{index}]"
            if not isinstance(entry, dict):
                self.fail(p, f"expected a table ([[accounts]]), got {_show(entry)}")
            if "name" not in entry:
                self.fail(f"{p}.name", "required key is missing")
            name = self.string(entry, p, "name", "").strip()
            if not name:
                self.fail(f"{p}.name", "must not be empty")
            if name.casefold() in seen:
                first = seen[name.casefold()]
                self.fail(
                    f"{p}.name", f"duplicate account name {_show(name)} (see accounts[{first}])"
                )
            seen[name.casefold()] = index
            provider = self.provider(entry, p)
            plugin = providers.plugin(provider)
            calendars: list[str] = []
            for i, calendar in enumerate(self.strings(entry, p, "calendars", ())):
                if not calendar.strip():
                    self.fail(f"{p}.calendars[{i}]", "must not be empty")
                calendars.append(calendar.strip())
            directory, exclude = self.directory_keys(entry, p, provider, plugin.directory)
            own = {key: value for key, value in entry.items() if key not in _ACCOUNT_KEYS}
            context = Where(self.directory, name, tuple(calendars), directory)
            try:
                options = plugin.options.model_validate(own, context=context)
            except ValidationError as error:
                key, problem = self.option_problem(error, plugin.options, provider)
                self.fail(f"{p}.{key}" if key else p, problem)
            accounts.append(
                Account(
                    name=name,
                    provider=provider,
                    options=options,
                    calendars=tuple(calendars),
                    directory=directory,
                    directory_exclude=exclude,
                )
            )
        return tuple(accounts)

    def provider(self, entry: Mapping[str, object], p: str) -> str:
        value = entry.get("provider", "memory")
        listed = ", ".join(providers.NAMES)
        if not isinstance(value, str):
            self.fail(f"{p}.provider", f"expected a string (one of {listed}), got {_show(value)}")
        if value not in providers.NAMES:
            close = difflib.get_close_matches(value.lower(), providers.NAMES, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.fail(
                f"{p}.provider", f"unknown provider {_show(value)}{hint}; expected one of {listed}"
            )
        return value

    def directory_keys(
        self, entry: Mapping[str, object], p: str, provider: str, listed: bool
    ) -> tuple[bool, tuple[str, ...]]:
        """``directory`` and ``directory_exclude``; the mode is the plugin's to check."""
        directory = self.boolean(entry, p, "directory", False)
        patterns = self.strings(entry, p, "directory_exclude", ())
        if (directory or patterns) and not listed:
            key = "directory" if directory else "directory_exclude"
            owners = [name for name in providers.NAMES if providers.plugin(name).directory]
            self.fail(
                f"{p}.{key}",
                f"only {' and '.join(owners)} accounts use this key (this account is {provider})",
            )
        if patterns and not directory:
            self.fail(f"{p}.directory_exclude", "only used with directory = true")
        exclude: list[str] = []
        for i, pattern in enumerate(patterns):
            if not pattern.strip():
                self.fail(f"{p}.directory_exclude[{i}]", "must not be empty")
            exclude.append(pattern.strip().casefold())
        return directory, tuple(exclude)

    def option_problem(
        self, error: ValidationError, model: type[BaseModel], provider: str
    ) -> tuple[str, str]:
        """The first of a plugin's validation errors as (key in the account, problem)."""
        first = error.errors(include_url=False)[0]
        loc = [str(part) for part in first["loc"]]
        key = loc[0] if loc else ""
        kind = first["type"]
        value = first.get("input")
        context = first.get("ctx") or {}
        cause = context.get("error")
        if isinstance(cause, OptionProblem):
            return (cause.key or key), cause.problem
        if kind == "extra_forbidden":
            return key, self.unknown_account_key(key, model, provider)
        if kind == "literal_error":
            options = [str(o) for o in get_args(model.model_fields[key].annotation)]
            close = difflib.get_close_matches(str(value), options, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            noun = "mode" if key == "mode" else "value"
            return key, f"unknown {noun} {_show(value)}{hint}; expected one of {', '.join(options)}"
        expected = {
            "string_type": "a string",
            "int_type": "an integer",
            "bool_type": "true or false",
            "list_type": "an array",
        }
        if kind in expected:
            return key, f"expected {expected[kind]}, got {_show(value)}"
        if kind == "greater_than_equal":
            return key, f"must be at least {context['ge']}, got {value}"
        if kind == "less_than_equal":
            return key, f"must be at most {context['le']}, got {value}"
        if kind == "missing":
            return key, "required key is missing"
        return key, _one_line(str(first["msg"]))

    def unknown_account_key(self, key: str, model: type[BaseModel], provider: str) -> str:
        """Why ``key`` has no place here: a typo, or another provider's or section's key."""
        known = (*_ACCOUNT_KEYS, *model.model_fields)
        owners = [
            name
            for name in providers.NAMES
            if name != provider and key in providers.plugin(name).options.model_fields
        ]
        if owners:
            return f"only {' and '.join(owners)} accounts use this key (this account is {provider})"
        return self.unknown(key, _ACCOUNTS, known)
