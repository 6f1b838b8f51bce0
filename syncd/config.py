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

import difflib
import enum
import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, NoReturn, Self, TypeVar, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

import providers
import providers.base
from providers.options import (
    CREDENTIAL_PREFIX,
    OptionProblem,
    SecretSource,
    Url,
    Where,
    address,
    credential_name,
    credential_name_problem,
    domain,
    fold_address,
    where,
)
from providers.options import show as _show

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
#: What ``Fernet.generate_key()`` returns: 32 bytes, url-safe base64, padded.
_FERNET_KEY = re.compile(r"^[A-Za-z0-9_-]{43}=$")


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


class Section(BaseModel):
    """One ``[section]`` of the file: frozen, unknown keys refused, fields with help.

    Every field carries its default, its bounds and its help together, so the
    model is the one place a setting is defined; ``config/syncd.example.toml``
    repeats them in comments (a unit test keeps the two in step). Scalars are
    strict: TOML has real booleans and integers, so "yes" for true is a
    mistake to point at, not a value to guess. Relative paths resolve against
    the config file's folder, given as the validation context (``Where``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def _folder(info: ValidationInfo) -> Path:
    return where(info).folder


class Core(Section):
    """``[syncd]``: process-wide settings."""

    database: StrictStr = Field(
        "sqlite:///syncd.db",
        description="SQLAlchemy URL of the database; SQLite paths relative to this file",
    )
    base_url: StrictStr = Field(
        "http://localhost:8080",
        description="where people reach the agenda pages (links in invites)",
    )
    timezone: StrictStr = Field("UTC", description="IANA zone of dates in blocks and pages")
    template: Path = Field(
        BUNDLED_TEMPLATE,
        description="talking points a new pair starts with; empty: the bundled one",
    )
    carry_talking_points: StrictBool = Field(
        True, description="unchecked talking points of an ended meeting reappear in the next one"
    )
    dry_run: StrictBool = Field(False, description="read and plan, write nothing")
    key_file: SecretSource = Field(
        "", description="the Fernet key sealing secrets at rest, a path or credential:NAME"
    )

    @field_validator("database")
    @classmethod
    def _database(cls, value: str, info: ValidationInfo) -> str:
        url = value.strip()
        if not _ANY_URL.match(url):
            raise OptionProblem(
                None,
                "expected a SQLAlchemy URL such as 'sqlite:///syncd.db' or "
                f"'postgresql+psycopg://host/syncd', got {_show(url)}",
            )
        return _resolve_database(url, _folder(info))

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        url = value.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise OptionProblem(
                None, f"expected an http:// or https:// URL with a host, got {_show(url)}"
            )
        if parts.query or parts.fragment:
            raise OptionProblem(None, f"must not carry a query or fragment: {_show(url)}")
        return url.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        zone = value.strip()
        if not _is_zone(zone):
            raise OptionProblem(
                None,
                f"unknown time zone {_show(zone)} (expected an IANA name such as "
                "'Europe/Berlin' or 'UTC')",
            )
        return zone

    @field_validator("template", mode="before")
    @classmethod
    def _template(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            text = value.strip()
            return _folder(info) / Path(text).expanduser() if text else BUNDLED_TEMPLATE
        if isinstance(value, Path):
            return value
        raise OptionProblem(None, f"expected a string, got {_show(value)}")

    @field_validator("key_file", mode="before")
    @classmethod
    def _key_file(cls, value: object) -> object:
        if isinstance(value, str) and _FERNET_KEY.match(value.strip()):
            # The message must not repeat the value: it is the key.
            raise OptionProblem(
                None,
                "looks like a Fernet key itself; keys never go into the config file: "
                "name the file that holds it (`syncd keygen` writes one) or use credential:NAME",
            )
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Sync(Section):
    """``[sync]``: how much of each calendar one sync reads and writes, and when."""

    window_days: StrictInt = Field(28, ge=1, le=366, description="how far ahead a sync reads")
    past_days: StrictInt = Field(1, ge=0, le=366, description="how far back a sync reads")
    horizon_occurrences: StrictInt = Field(
        2, ge=1, le=100, description="occurrences of a series that get the block"
    )
    horizon_days: StrictInt = Field(
        14, ge=1, le=366, description="...or those starting within this many days, if fewer"
    )
    max_write_attempts: StrictInt = Field(
        3, ge=1, le=20, description="re-read, merge and retry after a lost race (412)"
    )
    page_size: StrictInt = Field(250, ge=1, le=2500, description="events per page of a listing")
    poll_seconds: StrictInt = Field(
        300, ge=1, le=86400, description="poll interval of a calendar without push"
    )
    max_poll_seconds: StrictInt = Field(
        3600, ge=1, le=7 * 86400, description="poll interval while a push channel is doubted"
    )
    push_poll_seconds: StrictInt = Field(
        21600, ge=1, le=7 * 86400, description="poll interval while a push channel is healthy"
    )
    lease_seconds: StrictInt = Field(
        120, ge=2, le=3600, description="how long a worker holds a calendar it syncs"
    )
    concurrency: StrictInt = Field(8, ge=1, le=64, description="calendars synced at once")
    shutdown_grace_seconds: StrictInt = Field(
        30, ge=0, le=3600, description="on SIGTERM, how long syncs in flight may finish"
    )
    invite_refresh_lead_minutes: StrictInt = Field(
        120, ge=0, le=10080, description="a changed agenda is rewritten this long before the start"
    )
    invite_refresh_gap_minutes: StrictInt = Field(
        180, ge=0, le=10080, description="at least this long after the invite's last write"
    )

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.horizon_days > self.window_days:
            raise OptionProblem(
                "horizon_days",
                f"must not exceed sync.window_days ({self.window_days}); "
                "occurrences beyond the window are never read",
            )
        if self.max_poll_seconds < self.poll_seconds:
            raise OptionProblem(
                "max_poll_seconds", f"must be at least sync.poll_seconds ({self.poll_seconds})"
            )
        if self.push_poll_seconds < self.max_poll_seconds:
            raise OptionProblem(
                "push_poll_seconds",
                f"must be at least sync.max_poll_seconds ({self.max_poll_seconds})",
            )
        return self


def _each(check: Callable[[str], str]) -> Callable[[tuple[str, ...]], tuple[str, ...]]:
    """A validator applying ``check`` to each element, blaming the element's index."""

    def checked(values: tuple[str, ...]) -> tuple[str, ...]:
        found = []
        for index, value in enumerate(values):
            try:
                found.append(check(value))
            except OptionProblem as problem:
                raise OptionProblem(f"[{index}]", problem.problem) from None
        return tuple(found)

    return checked


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise OptionProblem(None, f"bad regular expression {_show(pattern)}: {exc}") from None
    return pattern


Strings = tuple[StrictStr, ...]
Domains = Annotated[Strings, AfterValidator(_each(domain))]
Patterns = Annotated[Strings, AfterValidator(_each(_regex))]
Addresses = Annotated[Strings, AfterValidator(_each(address))]


class Detect(Section):
    """``[detect]``: the rules that decide whether an event is a 1:1.

    Title patterns are kept as source text; ``syncd.detect.Rules`` compiles
    them (they are known to compile, this model checked).
    """

    org_domains: Domains = Field((), description="the organization's email domains")
    domain_policy: DomainPolicy = Field(
        DomainPolicy.BOTH, description="both people inside org_domains, or any one"
    )
    title_include: Patterns = Field((), description="a title must match one of these, if any")
    title_exclude: Patterns = Field((), description="a title matching one of these is no 1:1")
    opt_out_marker: StrictStr = Field(
        "#noagenda", description="this text in a title or description keeps syncd out"
    )
    group_addresses: Addresses = Field((), description="mailing lists and groups: not people")
    resource_domains: Domains = Field(
        ("resource.calendar.google.com",), description="rooms and resources: not people"
    )

    @field_validator("opt_out_marker")
    @classmethod
    def _marker(cls, value: str) -> str:
        return value.strip()


class People(Section):
    """``[people]``: who is who across several addresses.

    ``aliases`` is flat (every alias maps straight to its final canonical
    address, chains followed) and case-folded, so a lookup is one step.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_default=True, arbitrary_types_allowed=True
    )

    aliases: Mapping[str, str] = Field(
        default_factory=lambda: MappingProxyType({}),
        description="an address -> the address syncd should use for that person",
    )

    @field_validator("aliases", mode="before")
    @classmethod
    def _aliases(cls, raw: object) -> Mapping[str, str]:
        if isinstance(raw, MappingProxyType):
            return raw
        if not isinstance(raw, dict):
            raise OptionProblem(None, f"expected a table of addresses, got {_show(raw)}")
        direct: dict[str, str] = {}
        spelled: dict[str, str] = {}
        for raw_alias, raw_target in raw.items():
            key = f'."{raw_alias}"'
            if not isinstance(raw_target, str):
                raise OptionProblem(key, f"expected an email address, got {_show(raw_target)}")
            try:
                alias, target = address(raw_alias), address(raw_target)
            except OptionProblem as problem:
                raise OptionProblem(key, problem.problem) from None
            if alias in direct and direct[alias] != target:
                raise OptionProblem(
                    key,
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
                    raise OptionProblem(f'."{spelled[alias]}"', f"alias loop: {loop}")
                chain.append(target)
                target = direct[target]
            flat[alias] = target
        return MappingProxyType(flat)


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


def _oidc_provider(name: str) -> str:
    if name not in OIDC_PROVIDERS:
        raise OptionProblem(
            None, f"unknown provider {_show(name)}; expected one of {', '.join(OIDC_PROVIDERS)}"
        )
    return name


class WebOidc(Section):
    """``[web.oidc]``: sign-in with Google and/or Microsoft (``sign_in = "oidc"``).

    Secrets are named (a path or ``credential:NAME``), never held: they are
    read when the web app starts (``syncd.assemble.web_settings``). What a
    provider needs is required only when sign-in is on and lists it
    (checked by ``Web``).
    """

    providers: Annotated[Strings, AfterValidator(_each(_oidc_provider))] = Field(
        (), description="google, microsoft or both"
    )
    session_secret_file: SecretSource = Field(
        "", description="the file holding the session secret, a path or credential:NAME"
    )
    session_hours: StrictInt = Field(12, ge=1, le=720, description="how long a sign-in lasts")
    google_client_file: SecretSource = Field(
        "", description="the Web application OAuth client's JSON (Google Cloud console)"
    )
    google_certs_url: Url = Field(GOOGLE_CERTS_URL, description="where Google's ID-token keys are")
    microsoft_tenant: StrictStr = Field("", description="the directory (tenant) id, a GUID")
    microsoft_client_id: StrictStr = Field("", description="the application (client) id")
    microsoft_client_secret_file: SecretSource = Field(
        "", description="the app registration's client secret, a path or credential:NAME"
    )
    microsoft_cloud: StrictStr = Field(
        "global", description="the Microsoft cloud the tenant lives in (as an account's cloud)"
    )
    microsoft_authority: Url = Field(
        "", description="the sign-in root instead of the cloud's; the tenant is appended"
    )
    microsoft_ca_file: StrictStr = Field(
        "", description="a PEM file of CAs to trust for the sign-in instead of the system's"
    )

    @field_validator("microsoft_tenant", "microsoft_client_id")
    @classmethod
    def _stripped(cls, value: str) -> str:
        return value.strip()

    @field_validator("microsoft_authority")
    @classmethod
    def _authority(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("microsoft_ca_file")
    @classmethod
    def _ca_file(cls, value: str, info: ValidationInfo) -> str:
        return str(_folder(info) / value.strip()) if value.strip() else ""

    @field_validator("microsoft_cloud")
    @classmethod
    def _cloud(cls, value: str) -> str:
        """One of the clouds a Microsoft account knows (the plugin's table, via the registry)."""
        clouds = _choices(providers.plugin("microsoft").options.model_fields["cloud"].annotation)
        if value not in clouds:
            close = difflib.get_close_matches(value, clouds, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise OptionProblem(
                None, f"unknown cloud {_show(value)}{hint}; expected one of {', '.join(clouds)}"
            )
        return value


class Web(Section):
    """``[web]``: the agenda pages, the JSON API and the provider webhooks."""

    listen: StrictStr = Field("127.0.0.1:8080", description="HOST:PORT the web server binds")
    sign_in: SignIn = Field(SignIn.LINK, description="how a page knows who is looking")
    proxy_header: StrictStr = Field(
        "X-Forwarded-Email", description="proxy-header mode: the header naming the person"
    )
    trusted_proxies: Strings = Field(
        ("127.0.0.1", "::1"), description="addresses or CIDR ranges whose header is believed"
    )
    admins: Addresses = Field((), description="who may see every agenda (never private notes)")
    secure_cookies: StrictBool = Field(True, description="cookies only over https")
    timezone: StrictStr = Field(
        "", description="IANA zone the pages show times in; empty: [syncd] timezone"
    )
    oidc: WebOidc = Field(default_factory=lambda: WebOidc(), description="[web.oidc]")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        listen = value.strip()
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise OptionProblem(None, f"expected HOST:PORT, got {_show(listen)}")
        return listen

    @field_validator("proxy_header")
    @classmethod
    def _proxy_header(cls, value: str) -> str:
        header = value.strip()
        if not re.fullmatch(r"[A-Za-z0-9-]+", header):
            raise OptionProblem(None, f"not a header name: {_show(header)}")
        return header

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return _each(_proxy)(values)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        zone = value.strip()
        if zone and not _is_zone(zone):
            raise OptionProblem(
                None,
                f"unknown time zone {_show(zone)} (expected an IANA name such as "
                "'Europe/Berlin', or \"\" for [syncd] timezone)",
            )
        return zone

    @field_validator("sign_in", mode="before")
    @classmethod
    def _no_demo(cls, value: object) -> object:
        if value == "demo":
            raise OptionProblem(
                None,
                "'demo' lets anyone be anyone, so only `syncd demo` offers it; "
                "expected one of link, proxy-header, oidc",
            )
        return value

    @model_validator(mode="after")
    def _oidc_needs(self) -> Self:
        """What sign-in with each listed provider cannot start without."""
        if self.sign_in is not SignIn.OIDC:
            return self
        oidc = self.oidc
        if not oidc.providers:
            raise OptionProblem(
                "oidc.providers", 'sign_in = "oidc" needs at least one of google, microsoft'
            )
        needed = [("session_secret_file", "the file holding the session secret")]
        if "google" in oidc.providers:
            needed.append(("google_client_file", "the Web application client's JSON"))
        if "microsoft" in oidc.providers:
            if not _TENANT_ID.match(oidc.microsoft_tenant):
                raise OptionProblem(
                    "oidc.microsoft_tenant",
                    f"expected the directory (tenant) id, a GUID, got "
                    f"{_show(oidc.microsoft_tenant)}; sign-in trusts the addresses of one "
                    "organization's accounts only",
                )
            if not oidc.microsoft_client_id:
                raise OptionProblem(
                    "oidc.microsoft_client_id", "required: the application (client) id"
                )
            needed.append(("microsoft_client_secret_file", "the app registration's client secret"))
        for key, what in needed:
            if not getattr(oidc, key):
                raise OptionProblem(f"oidc.{key}", f"required: {what}, a path or credential:NAME")
        return self

    @property
    def address(self) -> tuple[str, int]:
        """``listen`` as a host (IPv6 without its brackets) and a port; checked at parse."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


def _proxy(raw: str) -> str:
    """One trusted proxy: an address, or a CIDR range of them."""
    try:
        ipaddress.ip_network(raw.strip(), strict=True)
    except ValueError:
        try:
            network = ipaddress.ip_network(raw.strip(), strict=False)
        except ValueError:
            raise OptionProblem(
                None, f"not an IP address or CIDR range (such as '10.0.0.0/8'): {_show(raw)}"
            ) from None
        raise OptionProblem(
            None, f"{_show(raw)} has host bits set; did you mean '{network}'?"
        ) from None
    return raw


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _resolve_database(url: str, folder: Path) -> str:
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
    resolved = (folder / file_part).as_posix()
    return f"{match['scheme']}:///{resolved}{question}{query}"


#: One ``[[accounts]]`` entry (the provider's own keys in ``options``).
Account = providers.base.Account


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole configuration; ``path`` is the (absolute) file it came from."""

    path: Path
    syncd: Core = field(default_factory=lambda: Core())
    sync: Sync = field(default_factory=lambda: Sync())
    detect: Detect = field(default_factory=lambda: Detect())
    people: People = field(default_factory=People)
    accounts: tuple[Account, ...] = ()
    web: Web = field(default_factory=lambda: Web())

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


def _fields(cls: type[BaseModel]) -> tuple[str, ...]:
    return tuple(cls.model_fields)


def _one_line(text: str) -> str:
    return " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text


#: How an error names a value of these keys ("unknown policy 'all'").
_NOUNS = {"domain_policy": "policy", "sign_in": "sign-in mode", "mode": "mode"}
_Model = TypeVar("_Model", bound=BaseModel)


def _model_at(model: type[BaseModel], path: Sequence[str]) -> type[BaseModel]:
    """The model a nested key belongs to (``web.oidc.x``: WebOidc)."""
    for name in path:
        annotation = model.model_fields[name].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return model


def _choices(annotation: object) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation]
    return [str(option) for option in get_args(annotation)]


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
        core = self.section(data, "syncd", Core)
        sync = self.section(data, "sync", Sync)
        detect = self.section(data, "detect", Detect)
        people = self.section(data, "people", People)
        accounts = self.accounts(data.get(_ACCOUNTS, []))
        web = self.section(data, "web", Web)
        return Settings(self.path, core, sync, detect, people, accounts, web)

    def section(self, data: Mapping[str, object], name: str, model: type[_Model]) -> _Model:
        """One ``[name]`` table through its model; the first problem is the error."""
        table = data.get(name, {})
        if not isinstance(table, dict):
            self.fail(name, f"expected a table ([{name}]), got {_show(table)}")
        try:
            return model.model_validate(table, context=Where(self.directory))
        except ValidationError as error:
            key, problem = self.problem(error, model, name)
            self.fail(key, problem)

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
                self.fail(*self.problem(error, plugin.options, p, provider))
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

    def problem(
        self, error: ValidationError, model: type[BaseModel], prefix: str, provider: str = ""
    ) -> tuple[str, str]:
        """The first validation error as (full key, problem): one line, in the file's terms."""
        first = error.errors(include_url=False)[0]
        loc = list(first["loc"])
        key = prefix
        for part in loc:
            key += f"[{part}]" if isinstance(part, int) else f".{part}"
        kind = first["type"]
        value = first.get("input")
        context = first.get("ctx") or {}
        cause = context.get("error")
        if isinstance(cause, OptionProblem):
            if cause.key is None:
                return key, cause.problem
            joined = cause.key if cause.key[:1] in "[." else f".{cause.key}"
            return key + joined, cause.problem
        owner = _model_at(model, [p for p in loc[:-1] if isinstance(p, str)])
        field = str(loc[-1]) if loc else ""
        if kind == "extra_forbidden":
            if provider:
                return key, self.unknown_account_key(field, model, provider)
            return key, self.unknown(field, key.rsplit(".", 1)[0], tuple(owner.model_fields))
        if kind in ("literal_error", "enum"):
            options = _choices(owner.model_fields[field].annotation)
            close = difflib.get_close_matches(str(value).lower(), options, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            noun = _NOUNS.get(field, "value")
            listed = ", ".join(options)
            if not isinstance(value, str):
                return key, f"expected a string (one of {listed}), got {_show(value)}"
            return key, f"unknown {noun} {_show(value)}{hint}; expected one of {listed}"
        expected = {
            "string_type": "a string",
            "int_type": "an integer",
            "bool_type": "true or false",
            "list_type": "an array",
            "tuple_type": "an array of strings",
        }
        if kind in expected:
            return key, f"expected {expected[kind]}, got {_show(value)}"
        if kind in ("model_type", "dict_type", "model_attributes_type"):
            return key, f"expected a table ([{key}]), got {_show(value)}"
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
