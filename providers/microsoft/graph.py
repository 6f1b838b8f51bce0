"""Microsoft Graph v1.0 (Outlook calendars) over httpx, with app-only tokens from msal.

How the Provider terms map onto Graph:

* **calendar** – a mailbox's default calendar, ``users/{address}``. In
  organization mode one app-only token (client credentials, the ``.default``
  scope of an app granted ``Calendars.ReadWrite``) serves every mailbox of the
  tenant. Graph throttles per mailbox and allows only four requests in flight
  for one mailbox, so every request holds that mailbox's semaphore (the reads
  that complete one delta page run in parallel up to that limit).
* **cursor** – the ``@odata.deltaLink`` of a ``calendarView/delta`` round,
  kept whole (it is opaque) and prefixed with the window the round started
  on. A delta round never widens its window, so once the caller's window has
  moved past the round's end by more than a quarter of its length, the cursor
  is reported as ``CursorExpired``: the caller's full sync starts a round on
  the current window, and occurrences entering the horizon are not missed. A
  410 (``SyncStateNotFound``) is ``CursorExpired`` too.
* **series** – delta never lists series masters: it expands each series into
  the occurrences and exceptions inside the window. ``changes`` therefore
  reports occurrences (``series_id`` + ``original_start``) and single events,
  never a master; ``instances`` and ``get`` still read masters for callers
  that hold a master's id. ``instances`` returns series order (Graph lists
  exceptions first).
* **occurrence key** – Graph gives every occurrence its own ``iCalUId``; the
  series master's ``iCalUId`` + ``originalStart`` names one occurrence in
  every copy. The master is read once per series and remembered.
* **stubs** – delta may return an occurrence as a stub (id, type,
  seriesMasterId, start, end, etag), and never returns extended properties
  (``$expand`` is refused on delta). A changed copy that lacks what we need is
  read with one GET (``$expand`` of our property); a copy whose etag matches
  the one last read is taken from memory, and an attendee's complete copy
  needs no GET at all, since our property only ever lives on organizer copies.
* **deleted vs cancelled** – ``@removed`` entries are ``ChangePage.removed``;
  so is anything that left the window or changed outside it. ``isCancelled``
  copies stay events with ``cancelled=True``; but the organizer's cancelled
  occurrence is simply gone (``@removed``, absent from ``instances``, 404):
  only attendees' copies show the cancellation.
* **bodies** – Exchange stores every body as HTML and rewrites what it is
  sent (a document around a fragment, ``<br>`` for the line ends of text).
  Bodies are read as stored (no ``Prefer: outlook.body-content-type``): text
  would flatten an HTML body, and writing it back would destroy the person's
  formatting. A description read as HTML that still has markup goes back as
  ``html`` (kept byte for byte); one without markup goes as ``text``, so its
  line breaks survive and its angle brackets are not taken for tags.
* **writes** – ``PATCH`` of one occurrence or single event with ``If-Match``
  on the etag read, carrying the body and our tag in one request. Never a
  master (that rewrites every occurrence) and never an attendee's copy: an
  attendee's edit stays in their copy, only the organizer's update reaches
  everyone. Graph answers a stale etag with 412 (``ErrorIrresolvableConflict``)
  or 409: both are ``PreconditionFailed``.
* **tag** – a single-value extended property, ``TAG_PROPERTY``, in the
  organizer's copy. Its GUID is ours alone (a fixed random v4 GUID), so no
  other application's named property can collide with it; an extended property
  rather than an open extension because it is readable in the same GET that
  reads the body.
* **push** – a subscription on ``/users/{address}/events`` whose ``clientState``
  is the channel token. Graph puts ``clientState`` in the JSON body, never in
  a header, so ``parse_notification(headers)`` cannot work and returns None;
  webhooks use the module-level ``parse_notifications(body)``. Lifecycle
  notifications (``reauthorizationRequired``, ``subscriptionRemoved``,
  ``missed``) go to the same address: they carry ``lifecycleEvent`` in the
  body, so one route tells them apart and one URL needs validating.

* **directory** – an organization can have ``calendars()`` list everyone:
  ``GET /users`` with ``$select=id,mail,userPrincipalName,accountEnabled``
  and ``$filter=accountEnabled eq true`` (a filter Graph serves without
  advanced query headers), following ``@odata.nextLink``; a user without
  ``mail`` has no mailbox and is left out. The app needs the application
  permission User.Read.All; without it Graph answers 403
  ``Authorization_RequestDenied``: ``AuthRevoked``.

Every failure becomes a ``providers.base`` error in ``error_for`` and nowhere
else (an id Exchange cannot parse, 400 ``ErrorInvalidIdMalformed``, names no
event: ``NotFound``). Retrying is the caller's business (the engine retries ``Transient`` and
``RateLimited`` with backoff); the adapter only retries a 401 once with a fresh
token, because an app token can be revoked or rotated before msal's cache
notices.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol, TypeVar, cast, runtime_checkable
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import msal  # type: ignore[import-untyped]
import requests

from providers.base import (
    AuthRevoked,
    Channel,
    CursorExpired,
    NotFound,
    Notification,
    NotWritable,
    Person,
    PreconditionFailed,
    ProviderError,
    RateLimited,
    Transient,
    read_event,
    readable_occurrences,
    retry_after,
    watched,
)
from providers.body import looks_html
from providers.model import Attendee, ChangePage, Event, EventType, Response, Unreadable, Window

log = logging.getLogger(__name__)

#: Seconds to wait for a TCP (and TLS) connection to Graph before naming the host as unreachable.
CONNECT_TIMEOUT = 10.0
_T = TypeVar("_T")
_R = TypeVar("_R")

DEFAULT_GRAPH_ROOT = "https://graph.microsoft.com/v1.0/"
GRAPH_SCOPES = ("https://graph.microsoft.com/.default",)

#: Where syncd keeps its meeting token in the organizer's copy. The GUID is a
#: fixed random one that belongs to syncd; changing it orphans every tag written.
TAG_PROPERTY = "String {d8ea3b58-23a6-47f2-9222-6906e83d35ee} Name syncdMeeting"
_EXPAND_TAG = f"singleValueExtendedProperties($filter=id eq '{TAG_PROPERTY}')"

#: Graph keeps a subscription on Outlook events for under 7 days (10,080
#: minutes); a margin keeps clock skew from turning a renewal into a 400.
#: Graph's documented maximum lifetime of a subscription on Outlook events has
#: been 4,230 minutes and, in later documentation, 10,080; the lower one works
#: under both, so it is the default (configurable, a little margin kept).
SUBSCRIPTION_LIFETIME = timedelta(minutes=4_230)
_LIFETIME_MARGIN = timedelta(minutes=10)
MAX_CLIENT_STATE = 128

#: users.list's largest page; the directory is listed rarely, in as few calls as possible.
DIRECTORY_PAGE_SIZE = 999
_DIRECTORY_SELECT = "id,mail,userPrincipalName,accountEnabled,displayName"
#: The concurrency gate directory requests hold: no mailbox is named so.
_DIRECTORY_GATE = "/users"

#: How far the caller's window may run past a delta round's end, as a fraction
#: of the round's length, before the cursor is treated as expired.
CURSOR_DRIFT = 0.25
_CURSOR_PREFIX = "graph-delta-v1"

_RESPONSES = {
    "none": Response.NEEDS_ACTION,
    "notResponded": Response.NEEDS_ACTION,
    "organizer": Response.ACCEPTED,
    "accepted": Response.ACCEPTED,
    "tentativelyAccepted": Response.TENTATIVE,
    "declined": Response.DECLINED,
}
_SHOW_AS = {"oof": EventType.OUT_OF_OFFICE, "workingElsewhere": EventType.WORKING_LOCATION}
_OCCURRENCE_TYPES = frozenset({"occurrence", "exception"})
#: What a delta entry must carry to be mapped without a GET.
_COMPLETE = frozenset(
    {"subject", "body", "attendees", "organizer", "isOrganizer", "iCalUId", "type", "start", "end"}
)

# Graph error codes that decide the mapping whatever the status says.
_CURSOR_CODES = frozenset({"SyncStateNotFound", "SyncStateInvalid", "ResyncRequired"})
_MAILBOX_CODES = frozenset(
    {"MailboxNotEnabledForRESTAPI", "MailboxNotSupportedForRESTAPI", "ErrorInvalidUser"}
)
# An id Exchange cannot parse names no event: for the caller that is "not found".
_NO_SUCH_ID = frozenset({"ErrorInvalidIdMalformed"})
_DENIED_CODES = frozenset({"ErrorAccessDenied", "Authorization_RequestDenied", "AccessDenied"})
# msal (OAuth) errors that a person has to fix: secret, consent, app registration.
_OAUTH_REVOKED = frozenset(
    {
        "invalid_client",
        "unauthorized_client",
        "invalid_grant",
        "consent_required",
        "interaction_required",
        "access_denied",
        "invalid_scope",
        "invalid_resource",
    }
)
_AADSTS_REVOKED = frozenset({65001, 700016, 7000215, 7000222, 90002, 500011, 50020})
_OAUTH_TRANSIENT = frozenset({"temporarily_unavailable", "server_error"})


# --------------------------------------------------------------------------- errors


def _graph_error(response: httpx.Response) -> tuple[str, str]:
    """The ``error.code`` and ``error.message`` of a Graph error body, if it has one."""
    try:
        body = response.json().get("error") or {}
        return str(body.get("code", "")), str(body.get("message", ""))
    except (ValueError, AttributeError):
        return "", response.reason_phrase


def _oauth_error(result: Mapping[str, Any]) -> ProviderError:
    error = str(result.get("error", ""))
    description = str(result.get("error_description", "")).strip().splitlines()
    text = f"{error}: {description[0] if description else 'token request refused'}"
    codes = {int(c) for c in result.get("error_codes") or () if str(c).isdigit()}
    if error in _OAUTH_REVOKED or codes & _AADSTS_REVOKED:
        return AuthRevoked(text)
    if error in _OAUTH_TRANSIENT:
        return Transient(text)
    return ProviderError(text)


def error_for(failure: httpx.Response | BaseException | Mapping[str, Any]) -> ProviderError:
    """The one place where Graph's and msal's failures become the boundary's errors.

    Takes a failed Graph response, an exception (httpx, or requests under
    msal), or the error dict msal returns instead of raising.
    """
    if isinstance(failure, ProviderError):
        return failure
    if isinstance(failure, httpx.Response):
        status = failure.status_code
        code, message = _graph_error(failure)
        text = f"HTTP {status} {code}: {message}".strip()
        if status == 410 or code in _CURSOR_CODES:
            return CursorExpired(text)
        if code in _MAILBOX_CODES or (status == 403 and code in _DENIED_CODES):
            return AuthRevoked(f"mailbox needs attention: {text}")
        if status == 401:
            return AuthRevoked(f"token refused: {text}")
        if status == 404 or code in _NO_SUCH_ID:
            return NotFound(text)
        if status in (409, 412):
            return PreconditionFailed(text)
        if status in (429, 503):
            return RateLimited(text, retry_after=retry_after(failure.headers.get("retry-after")))
        if status >= 500:
            return Transient(text)
        return ProviderError(text)
    if isinstance(failure, Mapping):
        return _oauth_error(failure)
    if isinstance(failure, (httpx.TimeoutException, httpx.TransportError)):
        try:
            host = failure.request.url.netloc.decode("ascii", "replace")
        except RuntimeError:  # an error raised before any request was made
            host = "Graph"
        return Transient(f"cannot reach {host}: {type(failure).__name__}: {failure}")
    if isinstance(failure, msal.exceptions.MsalServiceError):
        # msal's word for an HTTP error status from the identity platform.
        answered = re.search(r"HTTP Error: (\d{3})", str(failure))
        if answered is not None and answered.group(1) == "429":
            return RateLimited(f"token endpoint: {failure}")
        if answered is not None and answered.group(1) >= "500":
            return Transient(f"token endpoint: {failure}")
        return ProviderError(f"token endpoint: {failure}")
    if isinstance(failure, requests.RequestException):
        return Transient(f"token endpoint: {type(failure).__name__}: {failure}")
    if isinstance(failure, (TimeoutError, ConnectionError)):
        return Transient(f"{type(failure).__name__}: {failure}")
    return ProviderError(f"{type(failure).__name__}: {failure}")


# --------------------------------------------------------------------------- tokens


@runtime_checkable
class RefreshableToken(Protocol):
    """A token source that can be told its cached token was refused."""

    def __call__(self) -> str: ...

    def refresh(self) -> str: ...


class AppTokenSource:
    """App-only tokens for one tenant, cached by msal until shortly before expiry.

    The msal application is built on first use: building it fetches the
    tenant's OpenID configuration, and a network failure at start-up should be
    one calendar's ``Transient``, not a crash.
    """

    def __init__(
        self,
        authority: str,
        client_id: str,
        client_secret: str,
        *,
        http_client: Any = None,
        scopes: Sequence[str] = GRAPH_SCOPES,
    ) -> None:
        self._authority = authority
        self._scopes = list(scopes)
        self._client_id = client_id
        self._client_secret = client_secret
        self._http_client = http_client
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    def _application(self) -> msal.ConfidentialClientApplication:
        with self._lock:
            if self._app is None:
                try:
                    self._app = msal.ConfidentialClientApplication(
                        self._client_id,
                        client_credential=self._client_secret,
                        authority=self._authority,
                        http_client=self._http_client,
                        # The cloud comes from the config: nothing to look up.
                        instance_discovery=False,
                    )
                except ValueError as error:
                    # msal's word for "this authority answered 4xx": a wrong tenant.
                    raise AuthRevoked(f"authority {self._authority}: {error}") from error
                except Exception as error:
                    raise error_for(error) from error
            return self._app

    def __call__(self) -> str:
        app = self._application()
        try:
            result = app.acquire_token_for_client(scopes=self._scopes)
        except ValueError as error:  # msal's reaction to a non-JSON token response
            raise Transient(f"token endpoint: {error}") from error
        except Exception as error:
            raise error_for(error) from error
        if not isinstance(result, dict) or "access_token" not in result:
            raise error_for(result if isinstance(result, dict) else {"error": "no_token"})
        return str(result["access_token"])

    def refresh(self) -> str:
        """Drop the cached access tokens (Graph refused one) and ask for a new one."""
        app = self._application()
        cache = app.token_cache
        kind = msal.TokenCache.CredentialType.ACCESS_TOKEN
        for item in list(cache.search(kind)):
            cache.remove_at(item)
        return self()


def app_token_source(
    authority: str,
    client_id: str,
    client_secret: str,
    *,
    http_client: Any = None,
    scopes: Sequence[str] = GRAPH_SCOPES,
) -> AppTokenSource:
    """Client-credentials tokens for Graph; ``http_client`` is a requests.Session for msal."""
    return AppTokenSource(
        authority, client_id, client_secret, http_client=http_client, scopes=scopes
    )


# --------------------------------------------------------------------------- mapping

_VCAL_UID = b"vCal-Uid\x01\x00\x00\x00"


def icalendar_uid(graph_uid: str) -> str:
    """The iCalendar UID a meeting had before Exchange wrapped it, if it had one.

    Graph's ``iCalUId`` is the hex of Exchange's GlobalObjectId. For a meeting
    that came from another system (a Google organizer inviting an Outlook
    attendee), that id wraps the sender's UID as ``vCal-Uid`` data
    ([MS-OXOCAL] 2.2.1.27); unwrapping it gives both systems' copies one
    occurrence key, so the meeting keeps one agenda whichever calendar syncd
    reads it from. Exchange's own ids are returned unchanged.
    """
    try:
        raw = bytes.fromhex(graph_uid)
    except ValueError:
        return graph_uid
    start = raw.find(_VCAL_UID)
    if start < 0:
        return graph_uid
    data = raw[start + len(_VCAL_UID) :]
    end = data.find(b"\x00")
    try:
        return data[: end if end >= 0 else len(data)].decode("utf-8") or graph_uid
    except UnicodeDecodeError:
        return graph_uid


def _query(params: Mapping[str, str]) -> str:
    """A query string with spaces as %20: OData reads ``+`` literally in ``$filter``."""
    return urlencode(params, quote_via=quote, safe="$(),'")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _moment(text: str) -> datetime:
    """A Graph DateTimeOffset (``...Z``, up to seven fractional digits)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _when(value: Mapping[str, Any] | None) -> datetime:
    """A dateTimeTimeZone; we ask for UTC, but honour a named zone if one comes back."""
    if not value or not value.get("dateTime"):
        raise ValueError("event has no start or end")
    moment = datetime.fromisoformat(str(value["dateTime"]))
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    zone = str(value.get("timeZone") or "UTC")
    if zone in ("UTC", "Etc/UTC", "tzone://Microsoft/Utc"):
        return moment.replace(tzinfo=UTC)
    try:
        return moment.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {zone!r}") from error


def _address(holder: Mapping[str, Any] | None) -> tuple[str, str]:
    email = (holder or {}).get("emailAddress") or {}
    return str(email.get("address") or ""), str(email.get("name") or "")


def _attendees(item: Mapping[str, Any], organizer: str) -> tuple[Attendee, ...]:
    """Graph lists the organizer apart from the attendees; syncd wants them in the list."""
    folded = organizer.casefold()
    people: list[Attendee] = []
    for raw in item.get("attendees") or ():
        email, name = _address(raw)
        kind = str(raw.get("type") or "required")
        response = str((raw.get("status") or {}).get("response") or "none")
        people.append(
            Attendee(
                email=email,
                name=name,
                is_resource=kind == "resource",
                is_organizer=bool(folded) and email.casefold() == folded,
                response=_RESPONSES.get(response, Response.NEEDS_ACTION),
                optional=kind == "optional",
            )
        )
    if folded and not any(a.is_organizer for a in people):
        _, name = _address(item.get("organizer"))
        people.insert(0, Attendee(organizer, name, is_organizer=True, response=Response.ACCEPTED))
    return tuple(people)


def _tag(item: Mapping[str, Any]) -> str | None:
    wanted = TAG_PROPERTY.casefold()
    for prop in item.get("singleValueExtendedProperties") or ():
        if str(prop.get("id", "")).casefold() == wanted:
            value = prop.get("value")
            return None if value is None else str(value)
    return None


def to_event(
    calendar: str, item: Mapping[str, Any], series_uid: str | None = None, tag: str | None = None
) -> Event:
    """A Graph event resource as a provider-neutral Event.

    ``series_uid`` is the master's iCalUId, which names an occurrence (its own
    differs per occurrence); ``tag`` stands in when the resource was read
    without our property (a PATCH response, a delta entry).
    """
    kind = str(item.get("type") or "singleInstance")
    occurrence = kind in _OCCURRENCE_TYPES
    if occurrence and not series_uid:
        raise ValueError(f"occurrence {item.get('id')} without its series' iCalUId")
    start, end = _when(item.get("start")), _when(item.get("end"))
    original = item.get("originalStart")
    organizer, _ = _address(item.get("organizer"))
    body = item.get("body") or {}
    found = _tag(item) if "singleValueExtendedProperties" in item else None
    return Event(
        id=str(item["id"]),
        calendar_id=calendar,
        ical_uid=icalendar_uid(
            str(series_uid if occurrence else item.get("iCalUId") or item["id"])
        ),
        title=str(item.get("subject") or ""),
        start=start,
        end=end,
        organizer=organizer,
        attendees=_attendees(item, organizer),
        description=str(body.get("content") or ""),
        description_is_html=str(body.get("contentType", "")).lower() == "html",
        all_day=bool(item.get("isAllDay", False)),
        cancelled=bool(item.get("isCancelled", False)),
        event_type=_SHOW_AS.get(str(item.get("showAs", "")), EventType.DEFAULT),
        recurring=kind == "seriesMaster",
        series_id=str(item["seriesMasterId"]) if occurrence else None,
        original_start=(_moment(str(original)) if original else start) if occurrence else None,
        etag=_etag(item),
        tag=found if found is not None else tag,
        is_organizer_copy=bool(item.get("isOrganizer", False)),
    )


#: What a stub of an unmodified occurrence says of itself; the rest is its master's.
_STUB_OWN = frozenset({"@odata.etag", "id", "seriesMasterId", "type", "start", "end"})
#: What belongs to the master alone and no occurrence of it has.
_MASTER_ONLY = frozenset({"recurrence", "iCalUId", "originalStart", "changeKey", "webLink"})


def _as_occurrence(master: Mapping[str, Any], stub: Mapping[str, Any]) -> dict[str, Any]:
    """An unmodified occurrence: its master at the stub's time, under the stub's id and etag."""
    merged = {k: v for k, v in master.items() if k not in _STUB_OWN | _MASTER_ONLY}
    merged.update({k: v for k, v in stub.items() if k in _STUB_OWN})
    return merged


def _needs_read(entry: Mapping[str, Any]) -> bool:
    """A delta entry that is a stub, or an organizer's copy without our property."""
    return not entry.keys() >= _COMPLETE or (
        bool(entry.get("isOrganizer")) and "singleValueExtendedProperties" not in entry
    )


def _etag(item: Mapping[str, Any]) -> str:
    return str(item.get("@odata.etag") or item.get("changeKey") or "")


# --------------------------------------------------------------------------- push


def parse_notifications(body: bytes) -> list[Notification]:
    """Every notification in a webhook POST body; empty if it is not one of Graph's.

    Graph batches notifications of several subscriptions in one ``value``
    array; a lifecycle notification is the same shape plus ``lifecycleEvent``.
    """
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than any notification
        return []
    entries = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(entries, list):
        return []
    found: list[Notification] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("subscriptionId"), str):
            continue
        lifecycle = entry.get("lifecycleEvent")
        found.append(
            Notification(
                channel_id=entry["subscriptionId"],
                token=str(entry.get("clientState") or ""),
                lifecycle=lifecycle if isinstance(lifecycle, str) else None,
            )
        )
    return found


# --------------------------------------------------------------------------- provider


class _Lru:
    """A bounded map: memory must not grow with every event an organization ever had."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()

    def get(self, key: tuple[str, str]) -> Any:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: tuple[str, str], value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def pop(self, key: tuple[str, str]) -> None:
        self._items.pop(key, None)


class MicrosoftProvider:
    """One Microsoft 365 tenant, reached with one app-only token source."""

    name = "microsoft"
    #: Exchange mails every attendee when the organizer's copy of a meeting changes.
    mails_attendees = True

    def __init__(
        self,
        calendars: Sequence[str],
        token: Callable[[], str],
        *,
        graph_root: str = DEFAULT_GRAPH_ROOT,
        page_size: int = 50,
        timeout: float = 30.0,
        max_concurrent_per_mailbox: int = 4,
        transport: httpx.BaseTransport | None = None,
        cache_size: int = 50_000,
        subscription_lifetime: timedelta = SUBSCRIPTION_LIFETIME,
        directory: bool = False,
        directory_exclude: Sequence[str] = (),
        directory_page_size: int = DIRECTORY_PAGE_SIZE,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """``verify``: how Graph's certificate is checked (a context trusting ``ca_file``)."""
        self._calendars = list(calendars)
        self._directory = directory
        self._exclude = [pattern.casefold() for pattern in directory_exclude]
        self._directory_page_size = directory_page_size
        #: who the last directory listing named (``calendars``), for the runtime to record
        self.listed_people: list[Person] = []
        self._token = token
        self._fresh_token: Callable[[], str] = (
            token.refresh if isinstance(token, RefreshableToken) else token
        )
        self._root = graph_root if graph_root.endswith("/") else graph_root + "/"
        self._max_subscription = subscription_lifetime - _LIFETIME_MARGIN
        self._origin = httpx.URL(self._root)
        self._page_size = page_size
        self._max_concurrent = max_concurrent_per_mailbox
        # A host that does not answer is named within CONNECT_TIMEOUT, not the read timeout.
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
            transport=transport,
            verify=verify,
        )
        self._lock = threading.Lock()
        self._mailboxes: dict[str, threading.BoundedSemaphore] = {}
        # What does not change between reads of one copy: the last Event read
        # per (calendar, id), reused while the etag matches; and each series
        # master's iCalUId per (calendar, master id), which never changes.
        self._events = _Lru(cache_size)
        self._series = _Lru(cache_size)

    def close(self) -> None:
        self._client.close()

    # -- plumbing ---------------------------------------------------------------

    def _mailbox(self, calendar: str) -> threading.BoundedSemaphore:
        key = calendar.casefold()
        with self._lock:
            gate = self._mailboxes.get(key)
            if gate is None:
                gate = self._mailboxes[key] = threading.BoundedSemaphore(self._max_concurrent)
            return gate

    def _url(self, calendar: str, *path: str) -> str:
        parts = [quote(calendar, safe="@"), *(quote(p, safe="") for p in path)]
        return f"{self._root}users/{'/'.join(parts)}"

    def _link(self, link: str) -> str:
        """A next/delta link, refused unless it points back at our Graph root.

        The bearer token goes wherever the link points; a link to another host
        (say, a cursor from before a change of ``graph_root``) must not get it.
        """
        url = self._origin.join(link)
        if (url.scheme, url.host, url.port) != (
            self._origin.scheme,
            self._origin.host,
            self._origin.port,
        ):
            raise CursorExpired(f"link to {url.host} is not under {self._root}")
        return str(url)

    def _bearer(self, fresh: bool) -> str:
        try:
            return self._fresh_token() if fresh else self._token()
        except Exception as error:
            raise error_for(error) from error

    def _send(
        self,
        calendar: str,
        method: str,
        url: str,
        *,
        body: Mapping[str, Any] | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> httpx.Response:
        """One request (two if a 401 asks for a fresh token), within the mailbox's limit."""
        gate = self._mailbox(calendar)
        for fresh in (False, True):
            request_headers = httpx.Headers(
                [
                    ("Authorization", f"Bearer {self._bearer(fresh)}"),
                    ("Accept", "application/json"),
                    *headers,
                ]
            )
            with gate:
                try:
                    response = self._client.request(method, url, json=body, headers=request_headers)
                except httpx.HTTPError as error:
                    raise error_for(error) from error
            if response.status_code == 401 and not fresh:
                log.info("Graph refused the token for %s; retrying with a fresh one", calendar)
                continue
            if response.is_success:
                return response
            raise error_for(response)
        raise AssertionError("unreachable")

    def _json(
        self,
        calendar: str,
        method: str,
        url: str,
        *,
        body: Mapping[str, Any] | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        response = self._send(calendar, method, url, body=body, headers=headers)
        try:
            payload = response.json()
        except ValueError as error:
            raise Transient(f"{method} {url}: answer is not JSON") from error
        if not isinstance(payload, dict):
            raise Transient(f"{method} {url}: answer is not a JSON object")
        return payload

    def _prefer(self, paged: bool = False) -> list[tuple[str, str]]:
        """One ``Prefer`` header: servers that read only the first one still see all."""
        wanted = ['outlook.timezone="UTC"']
        if paged:
            wanted.append(f"odata.maxpagesize={self._page_size}")
        return [("Prefer", ", ".join(wanted))]

    # -- reading and remembering ------------------------------------------------------

    def _read(self, calendar: str, event_id: str) -> dict[str, Any]:
        return self._json(
            calendar,
            "GET",
            f"{self._url(calendar, 'events', event_id)}?{_query({'$expand': _EXPAND_TAG})}",
            headers=self._prefer(),
        )

    def _series_uid(self, calendar: str, master_id: str) -> str:
        """The master's iCalUId, read once per series."""
        key = (calendar, master_id)
        with self._lock:
            uid = self._series.get(key)
        if uid is None:
            item = self._read(calendar, master_id)
            uid = str(item.get("iCalUId") or master_id)
            self._remember(calendar, item, uid)
        return cast(str, uid)

    def _remember(self, calendar: str, item: Mapping[str, Any], uid: str | None = None) -> None:
        """Note a master's iCalUId as soon as a master is seen, whoever read it."""
        if item.get("type") == "seriesMaster":
            with self._lock:
                self._series.put((calendar, str(item["id"])), uid or str(item.get("iCalUId")))

    def _event(self, calendar: str, item: Mapping[str, Any], tag: str | None = None) -> Event:
        """Map a full resource, reading the master first if this is an occurrence."""
        series_uid = None
        if item.get("type") in _OCCURRENCE_TYPES:
            series_uid = self._series_uid(calendar, str(item["seriesMasterId"]))
        self._remember(calendar, item)
        event = to_event(calendar, item, series_uid, tag)
        with self._lock:
            self._events.put((calendar, event.id), event)
        return event

    def _forget(self, calendar: str, event_id: str) -> None:
        with self._lock:
            self._events.pop((calendar, event_id))
            self._series.pop((calendar, event_id))

    def _known(self, calendar: str, event_id: str, etag: str) -> Event | None:
        with self._lock:
            event: Event | None = self._events.get((calendar, event_id))
        return event if event is not None and etag and event.etag == etag else None

    # -- the Provider protocol ------------------------------------------------------

    def calendars(self) -> list[str]:
        """The configured mailboxes and, with the directory on, everyone it lists now.

        What the config names is always watched; ``directory_exclude``
        (case-insensitive fnmatch patterns) filters the directory only.
        """
        if not self._directory:
            return list(self._calendars)
        self.listed_people = self.directory_people()
        listed = [person.address for person in self.listed_people]
        return watched(self._calendars, listed, self._exclude)

    def directory(self) -> list[str]:
        """The mailbox address of every enabled user of the tenant, lowercased."""
        return [person.address for person in self.directory_people()]

    def directory_people(self) -> list[Person]:
        """Every enabled user with a mailbox: address (lowercased), display name, manager.

        The manager comes in the same pages (``$expand=manager($select=mail)``),
        not one request per person.
        """
        query = {
            "$select": _DIRECTORY_SELECT,
            "$filter": "accountEnabled eq true",
            "$top": str(self._directory_page_size),
            "$expand": "manager($select=mail)",
        }
        url = f"{self._root}users?{_query(query)}"
        found: list[Person] = []
        while True:
            try:
                page = self._json(_DIRECTORY_GATE, "GET", url)
            except AuthRevoked as error:
                raise AuthRevoked(
                    f"directory: listing users needs the application permission "
                    f"User.Read.All, admin-consented: {error}"
                ) from error
            for user in page.get("value") or ():
                mail = user.get("mail") if isinstance(user, dict) else None
                if not mail or user.get("accountEnabled") is False:
                    continue  # no mailbox, or disabled after all
                boss = user.get("manager")
                manager = boss.get("mail") if isinstance(boss, dict) else None
                found.append(
                    Person(
                        str(mail).strip().lower(),
                        str(user.get("displayName") or ""),
                        str(manager).strip().lower() if manager else None,
                    )
                )
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return found
            try:
                url = self._link(str(next_link))
            except CursorExpired as error:
                raise ProviderError(f"directory: {error}") from error

    def changes(self, calendar: str, cursor: str | None, window: Window) -> Iterator[ChangePage]:
        if cursor is None:
            bounds = (window.start, window.end)
            span = {"startDateTime": _iso(window.start), "endDateTime": _iso(window.end)}
            url = f"{self._url(calendar, 'calendarView', 'delta')}?{_query(span)}"
        else:
            bounds, url = self._open_cursor(cursor, window)
        masters_read: dict[str, Mapping[str, Any]] = {}  # this round's reads of series masters
        while True:
            page = self._json(calendar, "GET", url, headers=self._prefer(True))
            events, removed, unreadable = self._complete(
                calendar, page.get("value") or [], masters_read
            )
            next_link = page.get("@odata.nextLink")
            if next_link:
                url = self._link(str(next_link))
                yield ChangePage(events, removed, unreadable=unreadable)
                continue
            delta_link = page.get("@odata.deltaLink")
            if not delta_link:
                raise Transient("delta round ended without a nextLink or deltaLink")
            cursor = self._cursor(bounds, str(delta_link))
            yield ChangePage(events, removed, cursor=cursor, unreadable=unreadable)
            return

    def _cursor(self, bounds: tuple[datetime, datetime], delta_link: str) -> str:
        start, end = (int(moment.timestamp()) for moment in bounds)
        return f"{_CURSOR_PREFIX} {start} {end} {self._link(delta_link)}"

    def _open_cursor(self, cursor: str, window: Window) -> tuple[tuple[datetime, datetime], str]:
        """The round's window and its delta link; expired once the window moved too far."""
        try:
            prefix, start_text, end_text, link = cursor.split(" ", 3)
            if prefix != _CURSOR_PREFIX:
                raise ValueError(prefix)
            start = datetime.fromtimestamp(int(start_text), UTC)
            end = datetime.fromtimestamp(int(end_text), UTC)
        except ValueError as error:
            raise CursorExpired("not a cursor of this provider") from error
        if window.end - end > (end - start) * CURSOR_DRIFT:
            raise CursorExpired(f"the delta round ends {end:%Y-%m-%d}; the window has moved on")
        return (start, end), self._link(link)

    def _complete(
        self, calendar: str, items: Sequence[object], masters_read: dict[str, Mapping[str, Any]]
    ) -> tuple[list[Event], list[str], list[Unreadable]]:
        """Turn one delta page into Events, with as few GETs as the entries allow.

        Delta sends a series' unmodified occurrences as stubs (id, etag,
        times). Such an occurrence is its master at another time: subject,
        attendees, body and properties are the master's, so the stubs of one
        series are completed from one read of the master, made once per delta
        round (``masters_read``), never one GET per occurrence. A modified
        occurrence (an exception) comes in full; it, or a single event, is
        read only when our property is missing from an organizer's copy
        (delta cannot expand it) and this process has not read that version.
        """
        removed: list[str] = []
        slots: list[Event | object] = []
        stubbed: set[str] = set()
        for item in items:
            if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
                slots.append(item)  # read_event says why it is unreadable
                continue
            event_id = item["id"]
            if "@removed" in item:
                removed.append(event_id)
                self._forget(calendar, event_id)
                continue
            known = self._known(calendar, event_id, _etag(item))
            if known is not None:
                slots.append(known)
                continue
            slots.append(item)
            master, kind = item.get("seriesMasterId"), item.get("type")
            if isinstance(kind, str) and kind in _OCCURRENCE_TYPES and isinstance(master, str):
                stubbed.add(master)

        def read_master(master: str) -> None:
            # A master deleted since the delta was taken: its occurrences say so below.
            with contextlib.suppress(NotFound):
                item = self._read(calendar, master)
                self._remember(calendar, item, str(item.get("iCalUId") or master))
                masters_read[master] = item

        # Each series' master once per round, before its occurrences, so that
        # occurrences completed in parallel do not each read it.
        self._parallel(read_master, sorted(stubbed - masters_read.keys()))

        def complete(slot: Mapping[str, Any]) -> Event:
            if not _needs_read(slot):
                return self._event(calendar, slot)
            master = masters_read.get(str(slot.get("seriesMasterId")))
            if slot.get("type") == "occurrence" and master is not None:
                return self._event(calendar, _as_occurrence(master, slot))
            return self._event(calendar, self._read(calendar, slot["id"]))

        def finish(slot: Event | object) -> Event | Unreadable | str:
            """The Event, why it is unreadable, or the id of an entry deleted since the delta."""
            if isinstance(slot, Event):
                return slot
            try:
                return read_event(slot, complete)
            except NotFound:
                event_id = str(cast(Mapping[str, Any], slot)["id"])
                self._forget(calendar, event_id)
                return event_id

        events: list[Event] = []
        unreadable: list[Unreadable] = []
        for outcome in self._parallel(finish, slots):
            if isinstance(outcome, Event):
                events.append(outcome)
            elif isinstance(outcome, Unreadable):
                unreadable.append(outcome)
            else:
                removed.append(outcome)
        return events, removed, unreadable

    def _parallel(self, fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        """``fn`` over ``items``, as many at once as one mailbox allows, in order."""
        if len(items) <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self._max_concurrent, len(items))) as pool:
            return list(pool.map(fn, items))

    def instances(self, calendar: str, series_id: str, window: Window) -> list[Event]:
        query = {
            "startDateTime": _iso(window.start),
            "endDateTime": _iso(window.end),
            "$expand": _EXPAND_TAG,
        }
        url = f"{self._url(calendar, 'events', series_id, 'instances')}?{_query(query)}"
        found: list[Event] = []
        while True:
            page = self._json(calendar, "GET", url, headers=self._prefer(True))
            convert = partial(self._event, calendar)
            found.extend(readable_occurrences(page.get("value"), convert, series_id))
            next_link = page.get("@odata.nextLink")
            if not next_link:
                # Graph lists exceptions before occurrences; callers expect series order.
                return sorted(found, key=lambda event: event.original_start or event.start)
            url = self._link(str(next_link))

    def get(self, calendar: str, event_id: str) -> Event:
        return self._event(calendar, self._read(calendar, event_id))

    def update_description(
        self, calendar: str, event_id: str, description: str, etag: str, tag: str | None
    ) -> Event:
        with self._lock:
            known: Event | None = self._events.get((calendar, event_id))
            master = self._series.get((calendar, event_id)) is not None
        if known is None and not master:
            known = self.get(calendar, event_id)  # a cold cache: learn what this copy is
        if master or (known is not None and known.recurring):
            # One write to a master rewrites every occurrence's body.
            raise NotWritable(f"{event_id} is a series master; write its occurrences")
        assert known is not None
        if not known.is_organizer_copy:
            raise NotWritable(f"{event_id} is an attendee's copy; only the organizer's is written")
        # Exchange stores every body as HTML. What was read as HTML goes back as
        # HTML; text without markup goes as text, so Exchange keeps its line
        # breaks and escapes its angle brackets instead of reading them as tags.
        html = known.description_is_html and looks_html(description)
        body: dict[str, Any] = {
            "body": {"contentType": "html" if html else "text", "content": description}
        }
        if tag is not None:
            body["singleValueExtendedProperties"] = [{"id": TAG_PROPERTY, "value": tag}]
        written = self._json(
            calendar,
            "PATCH",
            self._url(calendar, "events", event_id),
            body=body,
            headers=[("If-Match", etag), *self._prefer()],
        )
        # The PATCH answer is the whole event but without our (unexpanded) property.
        return self._event(calendar, written, tag if tag is not None else known.tag)

    # -- push ---------------------------------------------------------------------

    def watch(
        self, calendar: str, address: str, channel_id: str, token: str, ttl: timedelta
    ) -> Channel:
        """Graph names subscriptions itself: the returned channel carries its id."""
        if len(token) > MAX_CLIENT_STATE:
            raise ProviderError(f"clientState is {len(token)} chars; Graph allows 128")
        resource = f"/users/{calendar}/events"
        body = {
            "changeType": "created,updated,deleted",
            "notificationUrl": address,
            "lifecycleNotificationUrl": address,
            "resource": resource,
            "expirationDateTime": _iso(datetime.now(UTC) + min(ttl, self._max_subscription)),
            "clientState": token,
        }
        answer = self._json(calendar, "POST", f"{self._root}subscriptions", body=body)
        return self._channel(calendar, answer, resource)

    def renew(self, channel: Channel, ttl: timedelta) -> Channel:
        expires = datetime.now(UTC) + min(ttl, self._max_subscription)
        answer = self._json(
            channel.calendar,
            "PATCH",
            f"{self._root}subscriptions/{quote(channel.id, safe='')}",
            body={"expirationDateTime": _iso(expires)},
        )
        return self._channel(channel.calendar, answer, channel.resource_id)

    def _channel(self, calendar: str, answer: Mapping[str, Any], resource: str) -> Channel:
        """Channel.id is Graph's subscription id: notifications carry only that."""
        return Channel(
            id=str(answer["id"]),
            resource_id=str(answer.get("resource") or resource),
            calendar=calendar,
            expires=_moment(str(answer["expirationDateTime"])),
        )

    def stop(self, channel: Channel) -> None:
        try:
            self._send(
                channel.calendar,
                "DELETE",
                f"{self._root}subscriptions/{quote(channel.id, safe='')}",
            )
        except NotFound:
            return  # expired or removed already

    def parse_notification(self, headers: Mapping[str, str]) -> Notification | None:
        """Always None: Graph sends subscription id and clientState in the body.

        Webhooks for Graph use ``parse_notifications(body)`` instead.
        """
        return None
