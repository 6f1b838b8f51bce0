"""``syncd doctor``: check an installation before (and after) it goes live.

Each check yields one ``Check``: ok, warn or FAIL and one line saying what
was found and, when it is not ok, what to do. The checks are independent
where they can be, so one run shows every problem instead of the first
one: an unreachable Google account does not hide a key file others can
read, and a failing account does not stop the next account's check. Only a
config that does not parse ends the run, because every other check reads it.

What is checked, in order:

* the config parses;
* ``syncd.key_file``: the key exists, holds a Fernet key and is not readable
  by others (FAIL: syncd refuses such a key) nor by its group (warn: syncd
  accepts it, but everyone in the group can unseal the stored grants);
* the installation's identity, from the key (warn when it comes from
  ``base_url`` because no key is set: moving to a new address would then
  make syncd take its own blocks for another installation's);
* the other secret files (service-account JSON, client secrets, OAuth
  client files, the session secret): FAIL when others can read one (syncd
  refuses it), warn when its group can;
* ``syncd.template``: the talking points a new pair starts with can be read
  (FAIL otherwise: the daemon would not start) and holds at least one point
  (warn otherwise: new pairs would start with an empty agenda);
* the database is reachable and its schema is at the migrations' head
  (a database behind says to run ``syncd migrate``);
* ``syncd.base_url`` is https (warn otherwise, except on localhost, where
  plain http is how a demo or a test serves the pages);
* per account: ``webhook_url`` is https (plain http is a FAIL: notifications
  carry the channel token; on localhost a warn), and the provider answers
  one cheap read: the first page of changes of the first calendar over a
  one-minute window, through the same assembly as the daemon, so a wrong
  credential, scope or delegation shows up here and not at 3 a.m.

Secrets stay out of every line: the key and the grants are never printed,
database URLs have their password masked, and provider errors are reported
by type and the provider's own one-line message.

A secret configured as ``credential:NAME`` exists only inside the service
(systemd's ``LoadCredential=``). From a plain shell those checks are a warn
that says so; run doctor with the service's credentials (``systemd-run``,
see README) to check them too.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from providers.base import ProviderError
from providers.model import Window
from syncd import assemble, config, installation, secrets, status
from syncd.store import connect

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: The span the reachability read asks for: as cheap as a read gets.
PROBE_WINDOW = timedelta(minutes=1)


class Level(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    level: Level
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.level.value:<4}  {self.name}: {' '.join(self.detail.split())}"


def run(path: Path, now: datetime) -> Iterator[Check]:
    """Every check, in order, as it completes (the provider reads take a moment)."""
    try:
        settings = config.load(path)
    except config.ConfigError as error:
        yield Check(Level.FAIL, "config", f"{error}")
        return
    yield Check(Level.OK, "config", f"{settings.path} parses")
    yield key_file(settings)
    yield identity(settings)
    yield secret_files(settings)
    yield template(settings)
    yield from database(settings)
    yield base_url(settings)
    for account in settings.accounts:
        yield from account_checks(settings, account, now)


def failed(checks: list[Check]) -> bool:
    return any(check.level is Level.FAIL for check in checks)


# --------------------------------------------------------------------------- key file


def _in_service() -> bool:
    return bool(os.environ.get("CREDENTIALS_DIRECTORY"))


def key_file(settings: config.Settings) -> Check:
    name = "key file"
    value = settings.syncd.key_file.strip()
    if not value:
        needing = [a.name for a in settings.accounts if _single_user(a)]
        if needing:
            return Check(
                Level.FAIL,
                name,
                f"syncd.key_file is not set, but single-user account(s) {', '.join(needing)} "
                "keep sealed grants; set it and run `syncd keygen`",
            )
        return Check(Level.OK, name, "syncd.key_file not set (only single-user grants need it)")
    credential = config.credential_name(value)
    if credential is not None and not _in_service():
        return Check(
            Level.WARN,
            name,
            f"{value} is loaded by systemd (LoadCredential=) and not visible from this shell; "
            "not checked",
        )
    try:
        path = secrets.resolve(value, settings.directory, f"{settings.path}: syncd.key_file")
        secrets.load_key(settings)  # exists, not readable by others, a Fernet key
    except secrets.SecretError as error:
        return Check(Level.FAIL, name, str(error))
    if credential is None and path.stat().st_mode & 0o070:
        mode = path.stat().st_mode & 0o777
        return Check(
            Level.WARN,
            name,
            f"{path} is readable by its group (mode {mode:04o}); `chmod 600 {path}` unless "
            "the group is meant to unseal grants",
        )
    return Check(Level.OK, name, f"{path} holds a key and only its owner can read it")


def identity(settings: config.Settings) -> Check:
    name = "installation"
    if not settings.syncd.key_file.strip():
        derived = installation.identity(None, settings.syncd.base_url)
        return Check(
            Level.WARN,
            name,
            f"{derived}, from base_url (no syncd.key_file): with a new base_url syncd would "
            "take its own blocks for another installation's; set key_file and run "
            "`syncd keygen` before the first sync",
        )
    if config.credential_name(settings.syncd.key_file) is not None and not _in_service():
        return Check(Level.WARN, name, "comes from the key, which this shell cannot read")
    try:
        key = secrets.installation_key(settings)
    except secrets.SecretError as error:
        return Check(Level.FAIL, name, f"no identity without the key: {error}")
    derived = installation.identity(key, settings.syncd.base_url)
    return Check(Level.OK, name, f"{derived}, from the key: keep the key, it is this identity")


def _secret_settings(settings: config.Settings) -> list[tuple[str, str]]:
    """(key, value) of every secret file setting in use, except the key file (checked above)."""
    found: list[tuple[str, str]] = []
    for index, account in enumerate(settings.accounts):
        for key, value in account.options.secret_files().items():
            found.append((f"accounts[{index}].{key}", value))
    if settings.web.sign_in is config.SignIn.OIDC:
        oidc = settings.web.oidc
        for name in ("session_secret_file", "google_client_file", "microsoft_client_secret_file"):
            found.append((f"web.oidc.{name}", getattr(oidc, name)))
    return [(key, value.strip()) for key, value in found if value.strip()]


def secret_files(settings: config.Settings) -> Check:
    """Who can read each secret file: the same rule the daemon applies when it reads them."""
    name = "secret files"
    refused: list[str] = []
    shared: list[str] = []
    checked = 0
    for key, value in _secret_settings(settings):
        if config.credential_name(value) is not None:
            continue  # systemd owns the mode of what it hands over
        path = settings.directory / Path(value).expanduser()
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            continue  # the account's own check says what is missing
        checked += 1
        if mode & 0o007:
            refused.append(f"{key}: {path} is accessible to others (mode {mode:04o}; chmod 600)")
        elif mode & 0o070:
            shared.append(f"{key}: {path} is readable by its group (mode {mode:04o})")
    if refused:
        return Check(Level.FAIL, name, "; ".join(refused) + "; syncd refuses such files")
    if shared:
        return Check(Level.WARN, name, "; ".join(shared))
    return Check(Level.OK, name, f"{checked} file(s), readable by their owner only")


def template(settings: config.Settings) -> Check:
    name = "template"
    try:
        points = config.load_template(settings)
    except config.ConfigError as error:
        return Check(Level.FAIL, name, str(error))
    if not points:
        return Check(
            Level.WARN,
            name,
            f"{settings.syncd.template} holds no talking point; new pairs "
            "start with an empty agenda",
        )
    where = "bundled" if settings.syncd.template == config.BUNDLED_TEMPLATE else "file"
    return Check(
        Level.OK,
        name,
        f"{len(points)} talking points for new pairs ({where}: {settings.syncd.template})",
    )


def _single_user(account: config.Account) -> bool:
    """Whether the account runs on a sealed per-person grant (unsealed by the key)."""
    return account.options.grant() is not None


# --------------------------------------------------------------------------- database


def database(settings: config.Settings) -> Iterator[Check]:
    url = settings.syncd.database
    label = status.database_label(url)
    file = status.sqlite_file(url)
    if file is not None and not file.exists():
        # Connecting would create it; `syncd migrate` (or the daemon) does that.
        if file.parent.is_dir():
            yield Check(
                Level.WARN,
                "database",
                f"{file} does not exist yet; `syncd migrate` creates it",
            )
        else:
            yield Check(Level.FAIL, "database", f"{file}: directory {file.parent} does not exist")
        return
    try:
        engine = connect(url)
    except (ArgumentError, NoSuchModuleError, ImportError) as error:
        yield Check(Level.FAIL, "database", f"{label}: {status.database_error(error)}")
        return
    try:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            yield Check(Level.FAIL, "database", f"{label}: {status.database_error(error)}")
            return
        yield Check(Level.OK, "database", f"{label} is reachable")
        try:
            problem = status.schema_problem(engine)
        except SQLAlchemyError as error:
            yield Check(Level.FAIL, "migrations", status.database_error(error))
            return
        if problem is None:
            yield Check(Level.OK, "migrations", "the schema is at the newest revision")
        else:
            yield Check(Level.FAIL, "migrations", problem)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- addresses


def _local(url: str) -> bool:
    return (urlsplit(url).hostname or "") in _LOCAL_HOSTS


def base_url(settings: config.Settings) -> Check:
    url = settings.syncd.base_url
    name = "base_url"
    if urlsplit(url).scheme == "https":
        return Check(Level.OK, name, f"{url} is https")
    if _local(url):
        return Check(Level.OK, name, f"{url} is plain http on this machine only")
    return Check(
        Level.WARN,
        name,
        f"{url} is plain http: agenda links (and their tokens) cross the network unencrypted; "
        "serve them behind https",
    )


def webhook(account: config.Account, index: int) -> Check | None:
    if "webhook_url" not in type(account.options).model_fields:
        return None
    name = f"account {account.name} webhook_url"
    url = account.options.webhook()
    if not url:
        return Check(Level.OK, name, "not set: polling only")
    if urlsplit(url).scheme == "https":
        return Check(Level.OK, name, f"{url} is https")
    if _local(url):
        return Check(
            Level.WARN,
            name,
            f"{url} is plain http on localhost: fine for a test, unreachable for "
            f"{account.provider}",
        )
    return Check(
        Level.FAIL,
        name,
        f"accounts[{index}].webhook_url {url} is plain http: notifications carry the channel "
        "token; use https",
    )


# --------------------------------------------------------------------------- providers


def _credential_settings(
    settings: config.Settings, account: config.Account, index: int
) -> list[tuple[str, str]]:
    """The secret settings the account needs that name systemd credentials."""
    found: list[tuple[str, str]] = []
    if _single_user(account) and config.credential_name(settings.syncd.key_file) is not None:
        found.append(("syncd.key_file", settings.syncd.key_file))  # it unseals the grant
    found.extend(account.options.secret_files().items())
    return [
        (key if key.startswith("syncd.") else f"accounts[{index}].{key}", value)
        for key, value in found
        if config.credential_name(value) is not None
    ]


def account_checks(
    settings: config.Settings, account: config.Account, now: datetime
) -> Iterator[Check]:
    index = settings.accounts.index(account)
    hook = webhook(account, index)
    if hook is not None:
        yield hook
    yield reachable(settings, account, index, now)


def reachable(
    settings: config.Settings, account: config.Account, index: int, now: datetime
) -> Check:
    """One cheap read through the daemon's own assembly of the account."""
    name = f"account {account.name}"
    kind = account.provider
    hidden = _credential_settings(settings, account, index)
    if hidden and not _in_service():
        key, value = hidden[0]
        return Check(
            Level.WARN,
            name,
            f"{kind}: {key} = {value} is loaded by systemd (LoadCredential=) and not visible from "
            "this shell; reachability not checked",
        )
    try:
        with assemble.connected(account, settings) as conn:
            if conn.directory_error is not None:
                error = conn.directory_error
                return Check(Level.FAIL, name, f"{kind}: directory: {first_line(error)}")
            if not conn.calendars:
                return Check(Level.WARN, name, f"{kind}: no calendars to watch")
            first = conn.calendars[0]
            pages = conn.provider.changes(first, None, Window(now, now + PROBE_WINDOW))
            next(iter(pages), None)
    except ProviderError as error:
        return Check(Level.FAIL, name, f"{kind}: {first_line(error)} (reading {_where(account)})")
    except (secrets.SecretError, config.ConfigError) as error:
        return Check(Level.FAIL, name, f"{kind}: {error}")
    except Exception as error:  # a bug or an unmapped library error: still one line
        return Check(Level.FAIL, name, f"{kind}: unexpected {first_line(error)}")
    calendars = len(conn.calendars)
    return Check(
        Level.OK,
        name,
        f"{kind} reachable; read {first} ({calendars} calendar{'s' if calendars != 1 else ''})",
    )


def _where(account: config.Account) -> str:
    return account.calendars[0] if account.calendars else "its first calendar"


def first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
