"""What a plugin's ``[[accounts]]`` options are made of: one pydantic model per provider.

A provider declares its own keys (``tenant``, ``service_account_file``, …) as
a subclass of ``AccountOptions``: frozen, unknown keys refused, every field
with its default, bounds and help together. syncd's config loader keeps the
keys every account has (``name``, ``provider``, ``calendars``, ``directory``,
``directory_exclude``), hands the rest of the table to the plugin's model,
and turns the first validation error into its one-line ``file: key: problem``.

A rule that spans several keys raises ``OptionProblem`` naming the key to
blame, from a model validator; the loader reports it under that key. The
validation context (``Where``) carries what such rules need to know about the
rest of the account: its name, calendars, directory mode and the config
file's folder, against which relative paths resolve.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo

__all__ = [
    "CREDENTIAL_PREFIX",
    "AccountOptions",
    "Address",
    "Domain",
    "OptionProblem",
    "SecretSource",
    "address",
    "Url",
    "Where",
    "credential_name",
    "credential_name_problem",
    "domain",
    "fold_address",
    "grant_file",
    "show",
    "where",
]

#: A secret setting of this form names a file in ``$CREDENTIALS_DIRECTORY``
#: (systemd ``LoadCredential=``), so the secret never sits next to the config.
CREDENTIAL_PREFIX = "credential:"
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$")
_DOMAIN = re.compile(r"^[^@\s/:]+$")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


class OptionProblem(ValueError):
    """A value, or a combination of values, an account cannot run with; ``key`` is to blame.

    ``key`` is relative to the account (``"tenant"``, ``"calendars[0]"``), or
    None for the key whose validator raised it.
    """

    def __init__(self, key: str | None, problem: str) -> None:
        super().__init__(problem)
        self.key = key
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Where:
    """What a plugin's rules may know about the rest of its account (validation context)."""

    folder: Path
    name: str = ""
    calendars: tuple[str, ...] = ()
    directory: bool = False


def where(info: ValidationInfo) -> Where:
    """The ``Where`` the loader validates with; a bare default for a model built in code."""
    context = info.context
    if isinstance(context, Where):
        return context
    return Where(Path("."))


def show(value: object) -> str:
    """A value as the user wrote it in TOML, short enough for one log line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = repr(value)
        return shown if len(shown) <= 60 else shown[:56] + "...'"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, datetime | date | time):
        return f"a date/time ({value.isoformat()})"
    return repr(value)


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
        return f"credential name {show(name)} must be a plain file name (no '/' or '..')"
    return None


def _secret_source(raw: str) -> str:
    """A path or ``credential:NAME``, checked but left unresolved (see ``Secrets``)."""
    value = raw.strip()
    credential = credential_name(value)
    if credential is not None:
        problem = credential_name_problem(credential)
        if problem:
            raise OptionProblem(None, problem)
    elif value.startswith("{"):
        # Never echo it: this is the secret itself, pasted in.
        raise OptionProblem(
            None, "looks like the file's JSON content; give its path or credential:NAME"
        )
    return value


def _url(raw: str) -> str:
    """An https address; plain http only to this machine, where nobody can listen in."""
    value = raw.strip()
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OptionProblem(None, f"expected an https:// URL with a host, got {show(value)}")
    if parts.query or parts.fragment:
        raise OptionProblem(None, f"must not carry a query or fragment: {show(value)}")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise OptionProblem(
            None,
            f"must be https:// (plain http only for localhost or 127.0.0.1), got {show(value)}",
        )
    return value


def address(raw: str) -> str:
    """An email address, folded (``fold_address``); ``OptionProblem`` if it is none."""
    folded = fold_address(raw)
    if not _ADDRESS.match(folded):
        raise OptionProblem(None, f"expected an email address, got {show(raw)}")
    return folded


def domain(raw: str) -> str:
    """A DNS domain, folded, without a leading '@'; ``OptionProblem`` if it is none."""
    folded = raw.strip().removeprefix("@").casefold().strip(".")
    if not folded or not _DOMAIN.match(folded):
        raise OptionProblem(None, f"expected a domain name such as 'example.org', got {show(raw)}")
    return folded


def _unless_empty(check: Callable[[str], str]) -> Callable[[str], str]:
    return lambda raw: check(raw) if raw.strip() else ""


#: A secret file setting: a path (relative to the config file) or credential:NAME.
SecretSource = Annotated[str, AfterValidator(_secret_source)]
#: An https URL (plain http to loopback only); empty means "not set".
Url = Annotated[str, AfterValidator(_url)]
#: An email address, folded; empty means "not set".
Address = Annotated[str, AfterValidator(_unless_empty(address))]
#: A DNS domain, folded, without a leading '@'; empty means "not set".
Domain = Annotated[str, AfterValidator(_unless_empty(domain))]


def grant_file(text: str, info: ValidationInfo, suffix: str) -> str:
    """A per-person grant's file: ``text``, or ``<account name><suffix>`` beside the config.

    The file is rewritten whenever a refresh token rotates, so it must be a
    path: systemd credentials are read-only.
    """
    context = where(info)
    text = text.strip()
    if text.startswith(CREDENTIAL_PREFIX):
        raise OptionProblem(
            None,
            "must be a path: syncd rewrites the grant, and systemd credentials are read-only",
        )
    if not text:
        default = f"{context.name}{suffix}"
        if "/" in context.name or "\\" in context.name or context.name.startswith("."):
            raise OptionProblem(
                None, f"the default {show(default)} is not a plain file name; set token_file"
            )
        text = default
    return str(context.folder / Path(text).expanduser())


def single_user_file(value: str, info: ValidationInfo, suffix: str) -> str:
    """``token_file``: the sealed grant of single-user mode (``grant_file``), refused otherwise.

    For a model whose ``mode`` is declared before it (validated first).
    """
    if info.data.get("mode") != "single-user":
        if value.strip():
            raise OptionProblem(
                None, "only single-user mode uses this key (this account is organization)"
            )
        return ""
    return grant_file(value, info, suffix)


class AccountOptions(BaseModel):
    """The keys of one provider's ``[[accounts]]`` tables; subclasses add fields.

    Strict: TOML has real booleans, integers and arrays, so "yes" for true or
    "5" for 5 is a mistake to point at, not a value to guess.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    def secret_files(self) -> dict[str, str]:
        """The secret-file keys in use and their values, for doctor and the permission check."""
        return {}

    def grant(self) -> str | None:
        """The sealed per-person grant file, if this account runs on one (unsealed by the key)."""
        return None

    def webhook(self) -> str:
        """The address the provider pushes notifications to; empty: polling only."""
        return ""

    def described(self) -> dict[str, Any]:
        """The options as ``syncd status``/``explain`` may show them: no secret in them."""
        return self.model_dump()
