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
from typing import NoReturn, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

#: A secret setting of this form names a file in ``$CREDENTIALS_DIRECTORY``
#: (systemd ``LoadCredential=``), so the secret never sits next to the config.
CREDENTIAL_PREFIX = "credential:"
GOOGLE_API_ROOT = "https://www.googleapis.com/calendar/v3/"


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


class ProviderName(enum.StrEnum):
    MEMORY = "memory"
    GOOGLE = "google"
    MICROSOFT = "microsoft"
    CALDAV = "caldav"


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


class AccountMode(enum.StrEnum):
    """Whose authority a Google or Microsoft account acts with."""

    #: Google: a service account with domain-wide delegation, impersonating each
    #: person. Microsoft: an app-only token for the whole tenant.
    ORGANIZATION = "organization"
    #: One person's own delegated grant (``syncd auth google|microsoft``).
    SINGLE_USER = "single-user"


#: The name Google accounts used first; the same modes.
GoogleMode = AccountMode


class SendUpdates(enum.StrEnum):
    """Calendar API ``sendUpdates`` for our writes: who gets mailed about them."""

    NONE = "none"
    ALL = "all"
    EXTERNAL_ONLY = "externalOnly"


@dataclass(frozen=True, slots=True)
class GoogleAccount:
    """The ``[[accounts]]`` keys only ``provider = "google"`` takes.

    They are flat in TOML (one table per account reads better) but grouped
    here, so a non-Google account cannot carry Google settings by accident.
    The two credential files stay unresolved strings (a path or
    ``credential:NAME``) for the same reason as ``Core.key_file``.
    """

    mode: GoogleMode = GoogleMode.ORGANIZATION
    service_account_file: str = ""
    client_secrets_file: str = ""
    #: Single-user mode: the sealed grant; always set there (the parser fills
    #: in ``<config dir>/<account name>.google-grant``), ``None`` otherwise.
    token_file: Path | None = None
    api_root: str = GOOGLE_API_ROOT
    send_updates: SendUpdates = SendUpdates.NONE
    webhook_url: str = ""
    #: With ``Account.directory``: the administrator the Admin SDK is called as
    #: (the Directory API answers administrators only), case-folded.
    directory_admin: str = ""
    #: With ``Account.directory``: one domain's users; empty means the whole
    #: customer (``customer=my_customer``).
    directory_domain: str = ""


GRAPH_ROOT = "https://graph.microsoft.com/v1.0/"


@dataclass(frozen=True, slots=True)
class MicrosoftAccount:
    """The ``[[accounts]]`` keys only ``provider = "microsoft"`` takes.

    Organization mode: app-only access (client credentials) for the whole
    tenant: the app holds the application permission Calendars.ReadWrite,
    granted by an admin. ``client_secret_file`` stays an unresolved string (a
    path or ``credential:NAME``), like the Google credential files.

    Single-user mode: one person's delegated grant to a public client app (no
    secret), made with ``syncd auth microsoft`` (device code) and kept as a
    sealed msal token cache in ``token_file``.
    """

    mode: AccountMode = AccountMode.ORGANIZATION
    tenant: str = ""
    client_id: str = ""
    client_secret_file: str = ""
    #: Single-user mode: the sealed msal token cache; always set there (the
    #: parser fills in ``<config dir>/<account name>.msal-cache``), else ``None``.
    token_file: Path | None = None
    graph_root: str = GRAPH_ROOT
    webhook_url: str = ""
    subscription_minutes: int = 4230


@dataclass(frozen=True, slots=True)
class Account:
    """One ``[[accounts]]`` entry: one provider connection."""

    name: str
    provider: ProviderName = ProviderName.MEMORY
    calendars: tuple[str, ...] = ()
    state_file: Path | None = None
    #: Google and Microsoft organization mode: also watch every active person
    #: the organization's directory lists (re-listed by the daemon), so that
    #: ``calendars`` need not name everyone.
    directory: bool = False
    #: Case-insensitive fnmatch patterns of directory addresses not to watch
    #: (rooms, shared and no-reply mailboxes); ``calendars`` is never filtered.
    directory_exclude: tuple[str, ...] = ()
    #: Set exactly when ``provider`` is google.
    google: GoogleAccount | None = None
    #: Set exactly when ``provider`` is microsoft.
    microsoft: MicrosoftAccount | None = None


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


def fold_address(address: str) -> str:
    """The comparable form of an address: trimmed, no ``mailto:``, case-folded.

    Providers spell one address many ways (CalDAV adds ``mailto:``, Outlook
    keeps the case the sender typed); comparisons must not see the difference.
    """
    text = address.strip()
    if text[:7].casefold() == "mailto:":
        text = text[7:].strip()
    return text.casefold()


def credential_name(value: str) -> str | None:
    """``NAME`` of a ``credential:NAME`` setting, or ``None`` for a plain path."""
    if value.startswith(CREDENTIAL_PREFIX):
        return value[len(CREDENTIAL_PREFIX) :]
    return None


def credential_name_problem(name: str) -> str | None:
    """Why ``NAME`` cannot name a systemd credential, if it cannot.

    A credential is one file directly inside ``$CREDENTIALS_DIRECTORY``; a
    name that climbs out of it could point syncd at any file it can read.
    """
    if not name:
        return "credential: needs a name (credential:NAME)"
    if "/" in name or "\\" in name or ".." in name or name == ".":
        return f"credential name {_show(name)} must be a plain file name (no '/' or '..')"
    return None


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
_GOOGLE_KEYS = tuple(f.name for f in dataclasses.fields(GoogleAccount))
_MICROSOFT_KEYS = tuple(f.name for f in dataclasses.fields(MicrosoftAccount))
#: Which provider-specific keys each provider takes.
_PROVIDER_KEYS: Mapping[str, tuple[str, ...]] = {
    "google": _GOOGLE_KEYS,
    "microsoft": _MICROSOFT_KEYS,
}
#: The keys an ``[[accounts]]`` table may have: ``google`` and ``microsoft``
#: are the parsed groups of their providers' keys, not keys of their own.
_ACCOUNT_KEYS = tuple(
    dict.fromkeys(
        (
            *(f.name for f in dataclasses.fields(Account) if f.name not in _PROVIDER_KEYS),
            *_GOOGLE_KEYS,
            *_MICROSOFT_KEYS,
        )
    )
)
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
        for name, keys in (*owners, (_ACCOUNTS, _ACCOUNT_KEYS)):
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

    def token_file(self, p: str, name: str, text: str, suffix: str) -> Path:
        """A single-user grant's file: ``text``, or ``<account name><suffix>`` beside the config."""
        if not text:
            default = f"{name}{suffix}"
            if "/" in name or "\\" in name or name.startswith("."):
                self.fail(
                    f"{p}.token_file",
                    f"the default {_show(default)} is not a plain file name; set token_file",
                )
            text = default
        return self.file_path(text)

    def webhook_url(self, entry: Mapping[str, object], p: str, default: str) -> str:
        """Empty (polling only), or an address that passes the https rule."""
        url = self.string(entry, p, "webhook_url", default).strip()
        return self.url(f"{p}.webhook_url", url) if url else ""

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
        known = _ACCOUNT_KEYS
        accounts: list[Account] = []
        seen: dict[str, int] = {}
        for index, entry in enumerate(raw):
            p = f"{_ACCOUNTS}[{index}]"
            if not isinstance(entry, dict):
                self.fail(p, f"expected a table ([[accounts]]), got {_show(entry)}")
            self.check_keys(entry, p, known)
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
            provider = self.choice(entry, p, "provider", ProviderName.MEMORY, "provider")
            calendars: list[str] = []
            for i, calendar in enumerate(self.strings(entry, p, "calendars", ())):
                if not calendar.strip():
                    self.fail(f"{p}.calendars[{i}]", "must not be empty")
                calendars.append(calendar.strip())
            state_text = self.string(entry, p, "state_file", "").strip()
            if state_text and provider is not ProviderName.MEMORY:
                self.fail(
                    f"{p}.state_file",
                    f"only the memory provider uses a state file (this account is {provider})",
                )
            own = _PROVIDER_KEYS.get(provider.value, ())
            for keys in _PROVIDER_KEYS.values():
                for key in keys:
                    if key in entry and key not in own:
                        owners = " and ".join(o for o, ks in _PROVIDER_KEYS.items() if key in ks)
                        self.fail(
                            f"{p}.{key}",
                            f"only {owners} accounts use this key (this account is {provider})",
                        )
            directory, exclude = self.directory_keys(entry, p, provider)
            google = None
            microsoft = None
            if provider is ProviderName.GOOGLE:
                google = self.google(entry, p, name, calendars, directory=directory)
            elif provider is ProviderName.MICROSOFT:
                microsoft = self.microsoft(entry, p, name, calendars, directory=directory)
            accounts.append(
                Account(
                    name=name,
                    provider=provider,
                    calendars=tuple(calendars),
                    state_file=self.file_path(state_text) if state_text else None,
                    directory=directory,
                    directory_exclude=exclude,
                    google=google,
                    microsoft=microsoft,
                )
            )
        return tuple(accounts)

    def directory_keys(
        self, entry: Mapping[str, object], p: str, provider: ProviderName
    ) -> tuple[bool, tuple[str, ...]]:
        """``directory`` and ``directory_exclude``; the mode is checked per provider."""
        directory = self.boolean(entry, p, "directory", False)
        patterns = self.strings(entry, p, "directory_exclude", ())
        listed = provider in (ProviderName.GOOGLE, ProviderName.MICROSOFT)
        if (directory or patterns) and not listed:
            key = "directory" if directory else "directory_exclude"
            self.fail(
                f"{p}.{key}",
                f"only google and microsoft accounts use this key (this account is {provider})",
            )
        if patterns and not directory:
            self.fail(f"{p}.directory_exclude", "only used with directory = true")
        exclude: list[str] = []
        for i, pattern in enumerate(patterns):
            if not pattern.strip():
                self.fail(f"{p}.directory_exclude[{i}]", "must not be empty")
            exclude.append(pattern.strip().casefold())
        return directory, tuple(exclude)

    def microsoft(
        self,
        entry: Mapping[str, object],
        p: str,
        name: str,
        calendars: Sequence[str],
        *,
        directory: bool = False,
    ) -> MicrosoftAccount:
        d = MicrosoftAccount()
        mode = self.choice(entry, p, "mode", d.mode, "mode")
        organization = mode is AccountMode.ORGANIZATION
        required = {
            "tenant": "the directory (tenant) id of the organization",
            "client_id": "the application (client) id of the app registration",
            "client_secret_file": "the client secret (a path or credential:NAME)",
        }
        if not organization:
            required["tenant"] += " (or 'organizations')"
            required["client_id"] += " (a public client)"
            del required["client_secret_file"]
        values = {key: self.string(entry, p, key, "").strip() for key in required}
        secret_text = self.string(entry, p, "client_secret_file", "").strip()
        token_text = self.string(entry, p, "token_file", "").strip()
        misplaced = {"token_file": token_text} if organization else {}
        if not organization:
            misplaced["client_secret_file"] = secret_text
        for key, value in misplaced.items():
            if value:
                other = "single-user" if organization else "organization"
                self.fail(f"{p}.{key}", f"only {other} mode uses this key (this account is {mode})")
        for key, what in required.items():
            if not values[key]:
                self.fail(f"{p}.{key}", f"required for provider 'microsoft' in {mode} mode: {what}")
        token_file: Path | None = None
        if directory and not organization:
            self.fail(f"{p}.directory", f"organization mode only (this account is {mode})")
        if organization:
            if not calendars and not directory:
                self.fail(
                    f"{p}.calendars",
                    "required for provider 'microsoft': list the mailboxes whose calendars "
                    "to watch (or set directory = true)",
                )
            secret = self.secret_source(f"{p}.client_secret_file", secret_text)
        else:
            secret = ""
            if len(calendars) != 1:
                self.fail(
                    f"{p}.calendars",
                    "single-user mode needs exactly one address: the signed-in person's own "
                    f"mailbox (got {len(calendars)})",
                )
            self.address(f"{p}.calendars[0]", calendars[0])
            if token_text.startswith(CREDENTIAL_PREFIX):
                self.fail(
                    f"{p}.token_file",
                    "must be a path: syncd rewrites the token cache, and systemd credentials "
                    "are read-only",
                )
            token_file = self.token_file(p, name, token_text, ".msal-cache")
        graph_root = self.url(f"{p}.graph_root", self.string(entry, p, "graph_root", d.graph_root))
        if not urlsplit(graph_root).path.endswith("/v1.0/"):
            self.fail(f"{p}.graph_root", f"must end in '/v1.0/', got {_show(graph_root)}")
        webhook_url = self.webhook_url(entry, p, d.webhook_url)
        # Graph's bounds for subscriptions on events.
        minutes = self.integer(entry, p, "subscription_minutes", d.subscription_minutes, 45, 10080)
        return MicrosoftAccount(
            mode=mode,
            tenant=values["tenant"],
            client_id=values["client_id"],
            client_secret_file=secret,
            token_file=token_file,
            graph_root=graph_root,
            webhook_url=webhook_url,
            subscription_minutes=minutes,
        )

    def google(
        self,
        entry: Mapping[str, object],
        p: str,
        name: str,
        calendars: Sequence[str],
        *,
        directory: bool = False,
    ) -> GoogleAccount:
        d = GoogleAccount()
        mode = self.choice(entry, p, "mode", d.mode, "mode")
        service_account = self.secret_source(
            f"{p}.service_account_file",
            self.string(entry, p, "service_account_file", d.service_account_file),
        )
        client_secrets = self.secret_source(
            f"{p}.client_secrets_file",
            self.string(entry, p, "client_secrets_file", d.client_secrets_file),
        )
        token_text = self.string(entry, p, "token_file", "").strip()
        if token_text.startswith(CREDENTIAL_PREFIX):
            self.fail(
                f"{p}.token_file",
                "must be a path: syncd rewrites the grant, and systemd credentials are read-only",
            )
        organization = mode is GoogleMode.ORGANIZATION
        if organization:
            other, misplaced = "single-user", {"client_secrets_file": client_secrets}
            misplaced["token_file"] = token_text
        else:
            other, misplaced = "organization", {"service_account_file": service_account}
        for key, value in misplaced.items():
            if value:
                self.fail(f"{p}.{key}", f"only {other} mode uses this key (this account is {mode})")
        token_file: Path | None = None
        if organization:
            if not service_account:
                self.fail(
                    f"{p}.service_account_file",
                    "required for provider 'google' in organization mode: the service account "
                    "key file (a path or credential:NAME)",
                )
            if not calendars and not directory:
                self.fail(
                    f"{p}.calendars",
                    "required for provider 'google' in organization mode: list the addresses "
                    "of the calendars to watch (or set directory = true)",
                )
        elif directory:
            self.fail(f"{p}.directory", f"organization mode only (this account is {mode})")
        else:
            if not client_secrets:
                self.fail(
                    f"{p}.client_secrets_file",
                    "required for provider 'google' in single-user mode: the OAuth client JSON "
                    "(a path or credential:NAME)",
                )
            token_file = self.token_file(p, name, token_text, ".google-grant")
        # Bearer tokens travel to api_root, so it gets the same https rule.
        api_root = self.url(f"{p}.api_root", self.string(entry, p, "api_root", d.api_root))
        if not urlsplit(api_root).path.endswith("/calendar/v3/"):
            self.fail(
                f"{p}.api_root",
                f"must end in '/calendar/v3/' (it replaces the API's root URL and service "
                f"path), got {_show(api_root)}",
            )
        webhook_url = self.webhook_url(entry, p, d.webhook_url)
        admin = self.string(entry, p, "directory_admin", d.directory_admin).strip()
        domain = self.string(entry, p, "directory_domain", d.directory_domain).strip()
        if directory:
            if not admin:
                self.fail(
                    f"{p}.directory_admin",
                    "required with directory = true: an administrator's address the service "
                    "account may act as (the Directory API answers administrators only)",
                )
            admin = self.address(f"{p}.directory_admin", admin)
            domain = self.domain(f"{p}.directory_domain", domain) if domain else ""
        else:
            for key, value in (("directory_admin", admin), ("directory_domain", domain)):
                if value:
                    self.fail(f"{p}.{key}", "only used with directory = true")
        return GoogleAccount(
            mode=mode,
            service_account_file=service_account,
            client_secrets_file=client_secrets,
            token_file=token_file,
            api_root=api_root,
            send_updates=self.choice(entry, p, "send_updates", d.send_updates, "value"),
            webhook_url=webhook_url,
            directory_admin=admin,
            directory_domain=domain,
        )
