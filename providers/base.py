"""The provider interface and the one error hierarchy of the provider boundary.

A provider is one calendar system reached with one set of credentials: a
Google Workspace domain, a Microsoft 365 tenant, a CalDAV server, or the
in-memory fake. It is deliberately small and synchronous; the engine builds
everything else on top of it.

Terms (see also providers.model):

* **calendar** – one mailbox/calendar id the provider watches, usually a
  person's primary calendar, named by their address.
* **cursor** – opaque incremental-sync state. ``changes(calendar, None, w)``
  is a full sync of window ``w``; the last page carries the cursor for the next
  call. A cursor the server no longer accepts raises ``CursorExpired``; the
  caller then drops it and does a full sync, sweeping what vanished.
* **series** – the id of a recurring master. ``changes`` reports masters
  (``Event.recurring``), single events and modified occurrences as the
  provider stores them; ``instances`` expands one master into the
  occurrences inside a window, exceptions applied, cancelled ones included
  with ``cancelled=True``.
* **etag** – version of one copy. ``update_description`` writes only if the
  etag still matches (If-Match) and raises ``PreconditionFailed`` otherwise.

Errors: every failure that crosses this boundary is a ``ProviderError``
subclass, produced in one mapping function per provider, so the engine decides
what to do by type and never by matching message text.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from providers.model import MAX_ID_CHARS, ChangePage, Event, Unreadable, Window, storable
from providers.options import AccountOptions

log = logging.getLogger(__name__)


class ProviderError(Exception):
    """Base of every error a provider raises."""


class CursorExpired(ProviderError):
    """The stored cursor is no longer valid (Google 410, Graph SyncStateNotFound)."""


class PreconditionFailed(ProviderError):
    """The etag sent with a write no longer matches: someone else changed the event."""


class RateLimited(ProviderError):
    """The server asked us to slow down; ``retry_after`` seconds if it said so."""

    def __init__(self, message: str = "rate limited", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after(value: str | None) -> float | None:
    """Seconds an HTTP ``Retry-After`` header asks for (delta-seconds or a date).

    For ``RateLimited.retry_after``; an unreadable or absent header is None.
    """
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (moment - datetime.now(UTC)).total_seconds())


class Transient(ProviderError):
    """A 5xx, a timeout or a dropped connection: worth retrying with backoff."""


class AuthRevoked(ProviderError):
    """The grant for this account is gone; it needs a person to re-authorise."""


class NotWritable(ProviderError):
    """This copy cannot be written (not the organizer's copy, read-only calendar)."""


class NotFound(ProviderError):
    """The calendar or event does not exist (any more)."""


class QuotaExceeded(ProviderError):
    """A daily or project quota is spent; retrying soon will not help."""


#: What mapping a malformed resource raises: a bad value (an unparseable time,
#: an unknown zone, an absurd size), a wrong JSON type, a missing key. A
#: ``ProviderError`` met on the way (reading a series master) is not among
#: them: that is the provider failing, not the event.
MALFORMED = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError)
_MAX_REASON = 300


def read_event(item: object, convert: Callable[[Mapping[str, Any]], Event]) -> Event | Unreadable:
    """``convert(item)``, or why it cannot be read: one broken event never stops a calendar.

    Every adapter maps each resource of a page through here, so what counts as
    unreadable, and how the reason reads, is decided once.
    """
    try:
        if not isinstance(item, Mapping):
            raise TypeError(f"an event is a JSON object, not {type(item).__name__}")
        return convert(item)
    except MALFORMED as error:
        raw = item.get("id") if isinstance(item, Mapping) else None
        event_id = storable(raw) if isinstance(raw, str) and len(raw) <= MAX_ID_CHARS else None
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        return Unreadable(event_id, storable(reason[:_MAX_REASON]))


def readable_occurrences(
    items: object, convert: Callable[[Mapping[str, Any]], Event], series_id: str
) -> list[Event]:
    """The occurrences of one page of ``instances`` that can be read; the rest logged.

    ``instances`` returns Events only, so an unreadable occurrence is logged
    here and left out; the series' other occurrences still count.
    """
    found: list[Event] = []
    for item in items if isinstance(items, list) else ():
        outcome = read_event(item, convert)
        if isinstance(outcome, Unreadable):
            log.warning("skipping an occurrence of %s: %s", series_id, outcome.reason)
        else:
            found.append(outcome)
    return found


def split_readable(outcomes: Sequence[Event | Unreadable]) -> tuple[list[Event], list[Unreadable]]:
    events = [o for o in outcomes if isinstance(o, Event)]
    return events, [o for o in outcomes if isinstance(o, Unreadable)]


@runtime_checkable
class Provider(Protocol):
    """One calendar system. Implementations: memory, google, microsoft, caldav."""

    name: str
    #: Whether writing the organizer's copy of a meeting mails every attendee
    #: a meeting update (Exchange always does; Google when ``sendUpdates`` asks
    #: for it). The engine then rewrites a block only on the occasions
    #: ``syncd.budget`` allows, never once per agenda edit.
    mails_attendees: bool

    def calendars(self) -> list[str]:
        """The calendars this account watches (from config or the directory)."""
        ...

    def changes(self, calendar: str, cursor: str | None, window: Window) -> Iterator[ChangePage]:
        """Pages of events changed since ``cursor``; the last page holds the next cursor."""
        ...

    def instances(self, calendar: str, series_id: str, window: Window) -> list[Event]:
        """The occurrences of one series that overlap ``window``, cancelled ones included."""
        ...

    def get(self, calendar: str, event_id: str) -> Event:
        """Re-read one event (or occurrence) with its current body and etag."""
        ...

    def update_description(
        self, calendar: str, event_id: str, description: str, etag: str, tag: str | None
    ) -> Event:
        """Replace the description of one event or occurrence if ``etag`` still matches.

        ``tag`` is stored in the provider's hidden per-calendar property.
        Returns the event as written, with its new etag. Never called with a
        series master's id.
        """
        ...


@dataclass(frozen=True, slots=True)
class Person:
    """One person as a directory lists them: the address, a name, their manager's address."""

    address: str
    name: str = ""
    manager: str | None = None


@runtime_checkable
class Listing(Protocol):
    """A provider whose ``calendars()`` read a directory: who it listed, with names and managers."""

    listed_people: list[Person]


@dataclass(frozen=True, slots=True)
class Channel:
    """A push subscription on one calendar (Google channel, Graph subscription).

    ``id`` is ours (fresh for every subscription), ``resource_id`` the
    server's; both are needed to stop it. The secret token sent along with
    every notification is not kept here: only its digest is stored.
    """

    id: str
    resource_id: str
    calendar: str
    expires: datetime


@dataclass(frozen=True, slots=True)
class Notification:
    """What a webhook request says, once parsed: which channel, and what happened.

    ``handshake`` is the first message of a new channel (Google ``sync``),
    which only confirms the address works. ``lifecycle`` names an event about
    the subscription itself rather than the calendar (Graph
    ``reauthorizationRequired``, ``subscriptionRemoved``, ``missed``).
    """

    channel_id: str
    token: str
    handshake: bool = False
    lifecycle: str | None = None


@runtime_checkable
class Watchable(Protocol):
    """A provider that can push change notifications to a webhook."""

    def watch(
        self, calendar: str, address: str, channel_id: str, token: str, ttl: timedelta
    ) -> Channel:
        """Subscribe ``address`` to changes in ``calendar``; ``token`` comes back with each.

        ``channel_id`` is chosen by the caller, so it can be recorded before the
        server's first message (which may beat the answer to this call) arrives.
        Providers that name subscriptions themselves return their own id.
        """
        ...

    def stop(self, channel: Channel) -> None:
        """End a subscription; one that is already gone is not an error."""
        ...


def watched(configured: Sequence[str], listed: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """The configured calendars, then the directory's people not excluded and not yet named.

    Excludes are case-insensitive fnmatch patterns for the directory only:
    what the config names explicitly is always watched.
    """
    found = list(dict.fromkeys(configured))
    seen = {address.casefold() for address in found}
    for address in listed:
        folded = address.casefold()
        if folded in seen or any(fnmatch.fnmatchcase(folded, p) for p in exclude):
            continue
        seen.add(folded)
        found.append(address)
    return found


# --------------------------------------------------------------------------- plugins


class SetupError(Exception):
    """An account cannot be connected as configured: a missing grant, an unusable secret.

    ``str()`` is one line naming the file or key and the fix, never the secret.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.splitlines()))


class Sealed(Protocol):
    """A file whose content is encrypted with the installation's key (a grant, a token cache)."""

    path: Path

    def load(self) -> bytes | None:
        """The plaintext, or None if nothing was saved yet."""
        ...

    def save(self, data: bytes) -> None:
        """Replace the content atomically, readable by the owner only."""
        ...


class Secrets(Protocol):
    """What syncd lends a plugin to reach the secrets its options name.

    ``key`` is the option's name (``client_secret_file``); failures are
    ``SetupError`` lines naming the config file and that key.
    """

    def read(self, key: str, value: str, noun: str = "secret") -> bytes:
        """The content of the secret file ``value`` names, refused if others can read it."""
        ...

    def path(self, key: str, value: str) -> Path:
        """Where that file is, for a library that wants a path (checked like ``read``)."""
        ...

    def sealed(self, path: str) -> Sealed:
        """The sealed file at ``path``; needs the installation's key."""
        ...


@dataclass(frozen=True, slots=True)
class Account:
    """One ``[[accounts]]`` entry: the keys every account has, and the plugin's own options."""

    name: str
    provider: str
    options: AccountOptions
    calendars: tuple[str, ...] = ()
    #: Watch everyone the directory lists (only plugins with ``directory``).
    directory: bool = False
    #: Case-folded fnmatch patterns of directory addresses not to watch.
    directory_exclude: tuple[str, ...] = ()


_Options = TypeVar("_Options", bound=AccountOptions)


def options_of(account: Account, model: type[_Options]) -> _Options:
    """The account's options as the plugin's own model (a plugin is only handed its own)."""
    if not isinstance(account.options, model):
        raise TypeError(f"account {account.name!r} has no {model.__name__}")
    return account.options


@dataclass(frozen=True, slots=True)
class Setup:
    """What a plugin's ``connect`` and ``authorize`` get besides the account."""

    #: ``<config file>: accounts[<i>]``, the prefix of every error line.
    where: str
    secrets: Secrets
    page_size: int = 250


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    """What to answer a webhook request, and the notifications it carried.

    ``later``: answer at once and judge the notifications afterwards (Graph
    drops slow endpoints). Otherwise they are judged first, and if none of
    them was ours the answer is ``unknown_status`` (Google does not retry a
    404), so the response says nothing about which channels exist.
    """

    status: int
    notifications: tuple[Notification, ...] = ()
    later: bool = False
    unknown_status: int | None = None
    text: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class Prompt(Protocol):
    """Shows a person what to do during ``syncd auth`` and returns at once.

    ``url``, when given, is a page to open (the CLI may launch a browser).
    """

    def __call__(self, message: str, url: str | None = None) -> None: ...


class Plugin(Protocol):
    """One calendar system, as the registry hands it out (see ``providers/__init__``)."""

    name: str
    #: The model of this provider's own ``[[accounts]]`` keys.
    options: type[AccountOptions]
    #: Whether accounts may set ``directory = true``.
    directory: bool
    #: Bytes a webhook request body may hold; 0 means the provider has no push.
    webhook_limit: int
    #: How many of one account's calendars a process syncs at once.
    concurrency: int

    def connect(self, account: Account, setup: Setup) -> AbstractContextManager[Provider]:
        """The account's provider for a block; anything it keeps is saved on the way out."""
        ...

    def authorize(self, account: Account, setup: Setup, say: Prompt) -> str:
        """``syncd auth``: one person's consent, sealed; the line to print when done.

        Raises ``SetupError`` for an account that needs no consent.
        """
        ...

    def webhook(self, request: WebhookRequest) -> WebhookAnswer:
        """Judge nothing: parse the request into notifications and say what to answer."""
        ...
