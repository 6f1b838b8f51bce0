"""Google Calendar API v3, through google-api-python-client and google-auth.

How the Provider terms map onto the Calendar API:

* **calendar** – a person's primary calendar, named by their address. In
  organization mode every request for a person runs on a service-account
  credential delegated to that person (``with_subject``), so each person's
  quota and permissions are their own.
* **cursor** – the ``nextSyncToken`` of ``events.list``. A full sync lists
  the window (``timeMin``/``timeMax``) with ``showDeleted`` so that cancelled
  occurrences are seen; later syncs send only the token (the API refuses it
  together with time bounds). A 410 ``fullSyncRequired`` is ``CursorExpired``.
* **series** – ``events.list`` without ``singleEvents`` returns masters
  (with ``recurrence``), single events and modified occurrences; a master's
  occurrences come from ``events.instances``. An occurrence is named by its
  ``recurringEventId`` + ``originalStartTime``, which survive a move.
* **deleted vs cancelled** – Google reports a deleted event and a deleted
  series as ``status: cancelled`` without ``recurringEventId``: those become
  ``ChangePage.removed``. A cancelled occurrence keeps ``recurringEventId``
  and stays an event with ``cancelled=True``.
* **writes** – ``events.patch`` of one occurrence or single event (never a
  master: that would re-anchor the series), with ``If-Match`` on the etag read
  and ``sendUpdates`` from the config (``none`` by default: nobody gets an
  email for our edit). Our meeting token goes into
  ``extendedProperties.private``, which belongs to the organizer's copy only.

* **directory** – an organization can have ``calendars()`` list everyone:
  the Admin SDK Directory API's ``users.list`` (``customer=my_customer``, or
  one ``domain``), paged with ``pageToken``, suspended and archived users
  left out, ``primaryEmail`` lowercased. Only administrators may call it, so
  it runs on a credential delegated to one (``directory_admin``) with the one
  scope it needs, admin.directory.user.readonly; a refusal (scope not in the
  domain-wide delegation, subject not an admin) is ``AuthRevoked``.

Every HTTP failure becomes a ``providers.base`` error in ``error_for`` and
nowhere else. Retrying is the caller's business (the engine retries
``Transient`` and ``RateLimited`` with backoff), so requests here are sent
once (``num_retries=0``).

httplib2 is not thread-safe: each thread gets its own HTTP object and
service per person (``threading.local``).
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, cast
from urllib.parse import urlsplit

import google.auth.exceptions
import httplib2
from google.auth.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

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
    QuotaExceeded,
    RateLimited,
    Transient,
    read_event,
    readable_occurrences,
    retry_after,
    split_readable,
    watched,
)
from providers.body import looks_html
from providers.model import Attendee, ChangePage, Event, EventType, Response, Unreadable, Window

log = logging.getLogger(__name__)

DEFAULT_API_ROOT = "https://www.googleapis.com/calendar/v3/"
TAG_PROPERTY = "syncdMeeting"  # our key in extendedProperties.private
#: The Admin SDK's root (its discovery document's servicePath is empty: the
#: method paths start with ``admin/directory/v1/``).
DEFAULT_DIRECTORY_ROOT = "https://admin.googleapis.com/"
#: The one scope the directory listing asks for; domain-wide delegation must grant it.
DIRECTORY_SCOPE = "https://www.googleapis.com/auth/admin.directory.user.readonly"
DIRECTORY_PAGE_SIZE = 500  # users.list's maximum maxResults
#: httplib2's one timeout, for the connect and for each read of an answer (not the
#: whole request): a host that does not answer is named within it. Google sends
#: the first bytes of any answer well within a second.
SOCKET_TIMEOUT = 10.0

_EVENT_TYPES = {
    "default": EventType.DEFAULT,
    "outOfOffice": EventType.OUT_OF_OFFICE,
    "focusTime": EventType.FOCUS_TIME,
    "workingLocation": EventType.WORKING_LOCATION,
}
_RESPONSES = {r.value: r for r in Response}
_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
_QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})


# --------------------------------------------------------------------------- errors


def _reasons(error: HttpError) -> tuple[set[str], str]:
    try:
        payload = json.loads(error.content.decode("utf-8", "replace"))
        body = payload.get("error", {})
        reasons = {str(e.get("reason", "")) for e in body.get("errors", [])}
        return reasons, str(body.get("message", "")) or str(error.resp.reason)
    except (ValueError, AttributeError):
        return set(), str(getattr(error.resp, "reason", ""))


def error_for(error: Exception) -> ProviderError:
    """The one place where Google's failures become the provider boundary's errors."""
    if isinstance(error, ProviderError):
        return error
    if isinstance(error, google.auth.exceptions.RefreshError):
        text = str(error)
        if "invalid_grant" in text or "unauthorized_client" in text or "access_denied" in text:
            return AuthRevoked(_first_line(text))
        return Transient(f"token refresh failed: {_first_line(text)}")
    if isinstance(error, google.auth.exceptions.TransportError):
        return Transient(f"token endpoint unreachable: {_first_line(str(error))}")
    if isinstance(error, HttpError):
        status = int(error.resp.status)
        reasons, message = _reasons(error)
        headers = {str(k).lower(): str(v) for k, v in dict(error.resp).items()}
        if status == 410 and "deleted" not in reasons:
            return CursorExpired(message or "sync token expired")
        if status in (404, 410):
            return NotFound(message or "not found")
        if status == 412:
            return PreconditionFailed(message or "etag no longer matches")
        if status == 401:
            return AuthRevoked(message or "credentials rejected")
        if status == 429 or (status == 403 and reasons & _RATE_REASONS):
            return RateLimited(
                message or "rate limited", retry_after=retry_after(headers.get("retry-after"))
            )
        if status == 403 and reasons & _QUOTA_REASONS:
            return QuotaExceeded(message or "quota exceeded")
        if status == 403 and "forbiddenForNonOrganizer" in reasons:
            return NotWritable(message or "only the organizer can change this event")
        if status >= 500:
            return Transient(f"HTTP {status}: {message}")
        return ProviderError(f"HTTP {status} {', '.join(sorted(reasons))}: {message}".strip())
    if isinstance(error, (TimeoutError, socket.timeout, ConnectionError, ssl.SSLError)):
        return Transient(f"{type(error).__name__}: {error}")
    if isinstance(error, (httplib2.HttpLib2Error, OSError)):
        return Transient(f"{type(error).__name__}: {error}")
    return ProviderError(f"{type(error).__name__}: {error}")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def directory_error_for(error: Exception) -> ProviderError:
    """``error_for``, except that a 403 from the Admin SDK is a grant a person must fix.

    users.list answers 403 ``forbidden`` when the delegated subject is no
    administrator and ``insufficientPermissions`` when the token lacks the
    scope; neither goes away by retrying.
    """
    mapped = error_for(error)
    if type(mapped) is ProviderError and isinstance(error, HttpError) and error.resp.status == 403:
        return AuthRevoked(f"directory: {mapped}")
    return mapped


# --------------------------------------------------------------------------- mapping


def _when(value: Mapping[str, Any] | None) -> tuple[datetime, bool]:
    """A Google start/end/originalStartTime; all-day dates become UTC midnight."""
    if not value:
        raise ValueError("event has no start or end")
    if "dateTime" in value:
        moment = datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
        return moment.astimezone(UTC), False
    if "date" in value:
        day = datetime.fromisoformat(str(value["date"]))
        return day.replace(tzinfo=UTC), True
    raise ValueError("event time has neither dateTime nor date")


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _attendee(raw: Mapping[str, Any]) -> Attendee:
    return Attendee(
        email=str(raw.get("email", "")),
        name=str(raw.get("displayName", "")),
        is_resource=bool(raw.get("resource", False)),
        is_organizer=bool(raw.get("organizer", False)),
        response=_RESPONSES.get(str(raw.get("responseStatus", "")), Response.NEEDS_ACTION),
        optional=bool(raw.get("optional", False)),
    )


def _etag(value: object) -> str:
    """The etag, which goes back in ``If-Match``; one httplib2 cannot send is refused here.

    httplib2 uses each request header's value as a regular-expression
    replacement (``_normalize_headers``), so a backslash in it fails every
    write of the event (``bad escape``). Google's own etags are quoted digits.
    """
    text = str(value)
    if "\\" in text:
        raise ValueError(f"an etag with a backslash ({text[:40]!r}): it cannot be sent back")
    return text


def to_event(calendar: str, item: Mapping[str, Any], ical_uid: str | None = None) -> Event:
    """A Calendar API event resource as a provider-neutral Event.

    A cancelled occurrence comes as a stub without iCalUID; ``ical_uid`` is
    its series' then.
    """
    cancelled = item.get("status") == "cancelled"
    original = item.get("originalStartTime")
    original_start = _when(original)[0] if original else None
    if cancelled and "start" not in item and original_start is not None:
        # a cancelled occurrence may come back as a stub with only its identity
        start = end = original_start
        all_day = False
    else:
        start, all_day = _when(item.get("start"))
        end, _ = _when(item.get("end"))
    organizer = item.get("organizer") or {}
    description = str(item.get("description", ""))
    private = (item.get("extendedProperties") or {}).get("private") or {}
    return Event(
        id=str(item["id"]),
        calendar_id=calendar,
        ical_uid=str(item.get("iCalUID") or ical_uid or item["id"]),
        title=str(item.get("summary", "")),
        start=start,
        end=end,
        organizer=str(organizer.get("email", "")),
        attendees=tuple(_attendee(a) for a in item.get("attendees", ())),
        description=description,
        description_is_html=looks_html(description),
        all_day=all_day,
        cancelled=cancelled,
        event_type=_EVENT_TYPES.get(str(item.get("eventType", "default")), EventType.OTHER),
        recurring=bool(item.get("recurrence")),
        series_id=str(item["recurringEventId"]) if item.get("recurringEventId") else None,
        original_start=original_start,
        etag=_etag(item.get("etag", "")),
        tag=str(private[TAG_PROPERTY]) if TAG_PROPERTY in private else None,
        is_organizer_copy=bool(organizer.get("self", False)),
    )


def _is_removal(item: Mapping[str, Any]) -> bool:
    """Deleted events and deleted series (not cancelled occurrences)."""
    return item.get("status") == "cancelled" and not item.get("recurringEventId")


# --------------------------------------------------------------------------- provider


# --------------------------------------------------------------------------- directory


def directory_root(api_root: str) -> str:
    """Where the Admin SDK is, given where the Calendar API is.

    Production has its own host for it; an emulator (or proxy) serves both
    under one root, which is the Calendar root without ``calendar/v3/``.
    """
    if api_root == DEFAULT_API_ROOT:
        return DEFAULT_DIRECTORY_ROOT
    return api_root.removesuffix("calendar/v3/")


def _person(address: str, user: dict[str, Any]) -> Person:
    """A users.list entry as a ``Person``: ``name.fullName``, and a relation of type manager."""
    name = user.get("name")
    full = str(name.get("fullName") or "") if isinstance(name, dict) else ""
    manager = None
    for relation in user.get("relations") or ():
        if isinstance(relation, dict) and relation.get("type") == "manager":
            manager = str(relation.get("value") or "").strip().lower() or None
            break
    return Person(address, full, manager)


class GoogleDirectory:
    """The people of one Workspace customer (or one of its domains), from users.list.

    A service is built per listing: listings are rare (at start, then about
    hourly) and may come from any thread, and httplib2 is not thread-safe.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        domain: str = "",
        root: str = DEFAULT_DIRECTORY_ROOT,
        page_size: int = DIRECTORY_PAGE_SIZE,
        timeout: float = SOCKET_TIMEOUT,
    ) -> None:
        self._credentials = credentials
        self._domain = domain
        self._root = root
        self._page_size = page_size
        self._timeout = timeout

    def addresses(self) -> list[str]:
        """Every active user's primary address, lowercased, in the order listed."""
        return [person.address for person in self.people()]

    def people(self) -> list[Person]:
        """Every active user: primary address (lowercased), full name, manager (``relations``)."""
        try:
            http = AuthorizedHttp(self._credentials, http=httplib2.Http(timeout=self._timeout))
            users = build(
                "admin",
                "directory_v1",
                http=http,
                static_discovery=True,
                cache_discovery=False,
                client_options={"api_endpoint": self._root},
            ).users()
        except Exception as error:
            raise directory_error_for(error) from error
        where = {"domain": self._domain} if self._domain else {"customer": "my_customer"}
        found: list[Person] = []
        page_token: str | None = None
        while True:
            request = users.list(
                **where, maxResults=self._page_size, projection="basic", pageToken=page_token
            )
            try:
                page = cast(dict[str, Any], request.execute(num_retries=0))
            except Exception as error:  # every failure is mapped; none escapes raw
                raise directory_error_for(error) from error
            for user in page.get("users") or ():
                if user.get("suspended") or user.get("archived"):
                    continue
                address = str(user.get("primaryEmail") or "").strip().lower()
                if address:
                    found.append(_person(address, user))
            page_token = page.get("nextPageToken")
            if not page_token:
                return found


# --------------------------------------------------------------------------- provider


class GoogleProvider:
    """One Google Workspace domain (organization mode) or one person (single-user)."""

    name = "google"

    def __init__(
        self,
        calendars: Sequence[str],
        credentials_for: Callable[[str], Credentials],
        *,
        api_root: str = DEFAULT_API_ROOT,
        send_updates: str = "none",
        page_size: int = 250,
        timeout: float = SOCKET_TIMEOUT,
        directory: GoogleDirectory | None = None,
        directory_exclude: Sequence[str] = (),
    ) -> None:
        self._calendars = list(calendars)
        self._directory = directory
        #: who the last directory listing named (``calendars``), for the runtime to record
        self.listed_people: list[Person] = []
        self._exclude = [pattern.casefold() for pattern in directory_exclude]
        self._credentials_for = credentials_for
        self._api_root = api_root
        self._send_updates = send_updates
        self.mails_attendees = send_updates != "none"
        self._page_size = page_size
        self._timeout = timeout
        self._local = threading.local()
        # What stubs and writes need to know about series seen so far:
        # the iCalUID of each master (cancelled occurrences come without one),
        # and which ids are masters (we refuse to write those).
        self._series_uid: dict[tuple[str, str], str] = {}
        self._people: dict[str, Credentials] = {}
        self._lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------

    def _service(self) -> Any:
        """This thread's built Calendar service: one per thread, not one per person.

        Building one costs about half a megabyte and, with ``events()``, most
        of a settled poll's client CPU, so it is built once per thread (httplib2
        is not thread-safe: each thread keeps its own connections) and its
        ``events()`` resource kept. Whom a request acts for is decided when it
        is executed, with that person's credentials (``_execute``).
        """
        service = getattr(self._local, "service", None)
        if service is None:
            self._local.http = httplib2.Http(timeout=self._timeout)
            service = build(
                "calendar",
                "v3",
                http=self._local.http,
                static_discovery=True,
                cache_discovery=False,
                client_options={"api_endpoint": self._api_root},
            )
            self._local.service, self._local.events = service, service.events()
        return service

    def _events(self) -> Any:
        """This thread's ``events()`` resource, built once."""
        self._service()
        return self._local.events

    def _credentials(self, calendar: str) -> Credentials:
        """One person's credentials, kept across polls and threads so a token lives its hour.

        Never two threads for one mailbox at once (the scheduler's rule), so
        a person's credentials are refreshed by one thread at a time.
        """
        with self._lock:
            found = self._people.get(calendar)
            if found is None:
                found = self._people[calendar] = self._credentials_for(calendar)
        return found

    def _event(self, calendar: str, item: Mapping[str, Any]) -> Event:
        """Map one resource, filling a stub's iCalUID from its series."""
        series = item.get("recurringEventId")
        uid = None
        if series and not item.get("iCalUID"):
            uid = self._series_uid.get((calendar, str(series)))
            if uid is None:
                try:
                    uid = self.get(calendar, str(series)).ical_uid
                except NotFound:
                    raise ValueError(f"an occurrence of series {series}, which is gone") from None
        event = to_event(calendar, item, uid)
        if event.recurring:
            with self._lock:
                self._series_uid[(calendar, event.id)] = event.ical_uid
        return event

    def _execute(self, calendar: str, request: Any) -> dict[str, Any]:
        """Run ``request`` as the person whose calendar it is, on this thread's connections."""
        self._service()
        http = AuthorizedHttp(self._credentials(calendar), http=self._local.http)
        try:
            return cast(dict[str, Any], request.execute(http=http, num_retries=0))
        except Exception as error:  # every failure is mapped; none escapes raw
            mapped = error_for(error)
            if isinstance(error, (OSError, httplib2.HttpLib2Error)):  # never reached Google
                host = urlsplit(str(getattr(request, "uri", ""))).netloc or "Google"
                mapped = Transient(f"cannot reach {host}: {mapped}")
            raise mapped from error

    # -- the Provider protocol ------------------------------------------------------

    def calendars(self) -> list[str]:
        """The configured calendars and, with a directory, everyone it lists now.

        The directory's names and managers of that listing are kept in
        ``listed_people`` for the runtime to record.
        """
        if self._directory is None:
            return list(self._calendars)
        self.listed_people = self._directory.people()
        listed = [person.address for person in self.listed_people]
        return watched(self._calendars, listed, self._exclude)

    def changes(self, calendar: str, cursor: str | None, window: Window) -> Iterator[ChangePage]:
        params: dict[str, Any] = {
            "calendarId": calendar,
            "maxResults": self._page_size,
            "showDeleted": True,
        }
        if cursor is None:
            params.update(timeMin=_rfc3339(window.start), timeMax=_rfc3339(window.end))
        else:
            params["syncToken"] = cursor
        page_token: str | None = None
        while True:
            page = self._execute(calendar, self._events().list(**params, pageToken=page_token))
            outcomes: list[Event | Unreadable] = []
            removed: list[str] = []
            for item in page.get("items") or ():
                gone = isinstance(item, Mapping) and _is_removal(item)
                if gone and isinstance(item.get("id"), str):
                    removed.append(item["id"])
                else:
                    outcomes.append(read_event(item, lambda raw: self._event(calendar, raw)))
            events, unreadable = split_readable(outcomes)
            page_token = page.get("nextPageToken")
            if page_token is None:
                cursor = page.get("nextSyncToken")
                yield ChangePage(events, removed, cursor=cursor, unreadable=unreadable)
                return
            yield ChangePage(events, removed, unreadable=unreadable)

    def instances(self, calendar: str, series_id: str, window: Window) -> list[Event]:
        found: list[Event] = []
        page_token: str | None = None
        while True:
            page = self._execute(
                calendar,
                self._events().instances(
                    calendarId=calendar,
                    eventId=series_id,
                    timeMin=_rfc3339(window.start),
                    timeMax=_rfc3339(window.end),
                    showDeleted=True,
                    maxResults=self._page_size,
                    pageToken=page_token,
                ),
            )
            convert = partial(self._event, calendar)
            found.extend(readable_occurrences(page.get("items"), convert, series_id))
            page_token = page.get("nextPageToken")
            if page_token is None:
                return found

    def get(self, calendar: str, event_id: str) -> Event:
        item = self._execute(calendar, self._events().get(calendarId=calendar, eventId=event_id))
        if _is_removal(item):  # Google still answers for a deleted event, as cancelled
            raise NotFound(f"event {event_id} was deleted")
        return self._event(calendar, item)

    def update_description(
        self, calendar: str, event_id: str, description: str, etag: str, tag: str | None
    ) -> Event:
        if (calendar, event_id) in self._series_uid:
            # Patching a master rewrites every occurrence and re-anchors the series.
            raise NotWritable(f"{event_id} is a series master; write its occurrences")
        body: dict[str, Any] = {"description": description}
        if tag is not None:
            body["extendedProperties"] = {"private": {TAG_PROPERTY: tag}}
        request = self._events().patch(
            calendarId=calendar, eventId=event_id, body=body, sendUpdates=self._send_updates
        )
        request.headers["If-Match"] = etag
        return self._event(calendar, self._execute(calendar, request))

    # -- push ---------------------------------------------------------------------

    def watch(
        self, calendar: str, address: str, channel_id: str, token: str, ttl: timedelta
    ) -> Channel:
        body = {
            "id": channel_id,  # fresh per channel; Google caps ids at 64 chars
            "type": "web_hook",
            "address": address,
            "token": token,
            "params": {"ttl": str(int(ttl.total_seconds()))},
        }
        answer = self._execute(calendar, self._events().watch(calendarId=calendar, body=body))
        expires_ms = int(answer.get("expiration", 0)) or None
        expires = (
            datetime.fromtimestamp(expires_ms / 1000, UTC)
            if expires_ms
            else datetime.now(UTC) + ttl
        )
        return Channel(
            id=str(answer.get("id", body["id"])),
            resource_id=str(answer["resourceId"]),
            calendar=calendar,
            expires=expires,
        )

    def stop(self, channel: Channel) -> None:
        request = (
            self._service()
            .channels()
            .stop(body={"id": channel.id, "resourceId": channel.resource_id})
        )
        try:
            self._execute(channel.calendar, request)
        except NotFound:
            return  # already gone: expired or stopped elsewhere


def parse_notification(headers: Mapping[str, str]) -> Notification | None:
    """A Google push message is all headers; the body is empty."""
    lower = {k.lower(): v for k, v in headers.items()}
    channel_id = lower.get("x-goog-channel-id")
    state = lower.get("x-goog-resource-state")
    if not channel_id or not state:
        return None
    return Notification(
        channel_id=channel_id,
        token=lower.get("x-goog-channel-token", ""),
        handshake=state == "sync",
    )
