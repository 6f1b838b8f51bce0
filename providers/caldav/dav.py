"""CalDAV calendars through the caldav library: reads by sync-collection, writes by If-Match.

One account is one server and one set of credentials (a person's app
password, or a service account that may read everyone's calendars); each
watched address is one calendar collection, found from ``calendar_url``.

Incremental reads use WebDAV sync-collection (RFC 6578) where the server
offers it: the cursor is ``sync:<token>``. A server without it is read by
the collection's etag (its "ctag") and a listing of every object's etag:
the cursor is ``etags:<ctag>:<digest>`` and the listing is kept in memory
(a restart reads every object once). A token the server no longer knows
(Radicale answers 403, Xandikos 412, both with DAV:valid-sync-token) is
``CursorExpired``: the engine syncs the window again and sweeps.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import tzinfo
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

import caldav
import requests
from caldav.elements import dav
from caldav.lib import error as dav_error
from caldav.lib.url import URL

from providers.base import (
    AuthRevoked,
    CursorExpired,
    NotFound,
    NotWritable,
    PreconditionFailed,
    ProviderError,
    RateLimited,
    Transient,
    split_readable,
)
from providers.caldav import ics
from providers.model import ChangePage, Event, Unreadable, Window

__all__ = ["CalDavProvider"]

log = logging.getLogger(__name__)

_SYNC = "sync:"
_ETAGS = "etags:"
_MULTIGET_BATCH = 100
_WRITE_ATTEMPTS = 3


def error_for(failure: BaseException | int, text: str = "") -> ProviderError:
    """The one mapping from what the server or the transport said to the seam's errors."""
    if isinstance(failure, requests.Timeout | requests.ConnectionError):
        return Transient(f"{type(failure).__name__}: {str(failure)[:200]}")
    if isinstance(failure, dav_error.NotFoundError):
        return NotFound(str(failure)[:200])
    if isinstance(failure, dav_error.AuthorizationError):
        reason = str(getattr(failure, "reason", "") or failure)[:200]
        return AuthRevoked(f"the server refused the credentials or access: {reason}")
    status = failure if isinstance(failure, int) else None
    if status is None:
        return Transient(f"{type(failure).__name__}: {str(failure)[:200]}")
    if status == 404 or status == 410:
        return NotFound(f"{status} {text[:200]}".strip())
    if status in (401, 403):
        return AuthRevoked(f"{status}: the server refused the credentials or access")
    if status == 412:
        return PreconditionFailed("the event changed since it was read (412)")
    if status == 429:
        return RateLimited("429 from the CalDAV server")
    if status >= 500:
        return Transient(f"{status} from the CalDAV server")
    return ProviderError(f"{status} from the CalDAV server: {text[:200]}")


class CalDavProvider:
    """``schedules``: the server says it delivers the organizer's changes to attendees
    (RFC 6638 implicit scheduling, advertised as ``calendar-auto-schedule``).

    Such a server may mail attendees when the organizer's copy changes, so
    the provider then ``mails_attendees`` and syncd rewrites blocks only as
    the mail budget allows, as for Exchange. Delivery itself is checked, not
    believed: a server delivers only to attendees it knows as its own users
    (Xandikos advertises scheduling yet delivers to nobody here; Radicale has
    none), so after each write syncd reads the attendees' copies it holds and
    writes the new description into each one that did not get it, as the
    server would have.
    """

    name = "caldav"

    def __init__(
        self,
        calendars: Sequence[str],
        client: caldav.DAVClient,
        calendar_url: Callable[[str], str],
        *,
        zone: tzinfo,
        page_size: int = 250,
        schedules: bool = True,
        sync_collection: bool = True,
    ) -> None:
        """``sync_collection=False``: list etags even where sync-collection is offered."""
        self.mails_attendees = schedules
        self._sync_collection = sync_collection
        self._schedules = schedules
        self._calendars = list(calendars)
        self._client = client
        self._calendar_url = calendar_url
        self._zone = zone
        self._page_size = max(1, page_size)
        self._lock = threading.Lock()
        #: per calendar: the object etags of the last listing (servers without sync-collection)
        self._listings: dict[str, dict[str, str]] = {}

    # -- plumbing -------------------------------------------------------------

    def _collection(self, calendar: str) -> caldav.Calendar:
        return caldav.Calendar(client=self._client, url=self._calendar_url(calendar))

    def _href(self, calendar: str, name: str) -> str:
        return urljoin(self._calendar_url(calendar), quote(name, safe="@"))

    @staticmethod
    def _name(url: Any) -> str:
        return unquote(urlsplit(str(url)).path.rstrip("/").rsplit("/", 1)[-1])

    def _get(self, calendar: str, name: str) -> ics.Resource:
        try:
            answer = self._client.request(self._href(calendar, name))
        except requests.RequestException as failure:
            raise error_for(failure) from failure
        if answer.status != 200:
            raise error_for(answer.status, str(answer.raw or ""))
        etag = str(answer.headers.get("ETag") or "")
        try:
            return ics.parse(name, etag, answer.raw)
        except ValueError as failure:
            raise NotFound(f"{name}: unreadable: {failure}") from None

    def _resources(self, calendar: str, names: Sequence[str]) -> list[ics.Resource | Unreadable]:
        """The named objects, read in batches with calendar-multiget."""
        found: list[ics.Resource | Unreadable] = []
        collection = self._collection(calendar)
        for at in range(0, len(names), _MULTIGET_BATCH):
            batch = names[at : at + _MULTIGET_BATCH]
            try:
                hrefs = [URL.objectify(self._href(calendar, n)) for n in batch]
                loaded: list[Any] = list(collection.multiget(hrefs))
            except (dav_error.DAVError, requests.RequestException) as failure:
                raise error_for(failure) from failure
            for item in loaded:
                name = self._name(item.url)
                try:
                    found.append(ics.parse(name, "", item.data))
                except ValueError as failure:
                    found.append(Unreadable(name, f"{type(failure).__name__}: {failure}"[:300]))
        return found

    # -- Provider -------------------------------------------------------------

    def calendars(self) -> list[str]:
        return list(self._calendars)

    def changes(self, calendar: str, cursor: str | None, window: Window) -> Iterator[ChangePage]:
        if (cursor is not None and cursor.startswith(_ETAGS)) or (
            cursor is None and not self._sync_collection
        ):
            changed, removed, next_cursor = self._by_etags(calendar, cursor)
        else:
            token = cursor[len(_SYNC) :] if cursor is not None else None
            changed, removed, next_cursor = self._by_sync(calendar, token, cursor is None)
        outcomes: list[Event | Unreadable] = []
        for resource in self._resources(calendar, changed):
            if isinstance(resource, Unreadable):
                outcomes.append(resource)
                continue
            if cursor is None and not self._in_window(resource, window):
                continue
            outcomes.extend(ics.stored(calendar, resource, self._zone))
        yield from self._pages(outcomes, removed, next_cursor)

    def _in_window(self, resource: ics.Resource, window: Window) -> bool:
        try:
            return ics.overlaps(resource, window.start, window.end)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            return True  # read it, and let the mapping say why it is unreadable

    def _pages(
        self, outcomes: list[Event | Unreadable], removed: list[str], cursor: str
    ) -> Iterator[ChangePage]:
        """At most ``page_size`` entries a page, events first; the cursor on the last."""
        entries: list[Event | Unreadable | str] = [*outcomes, *removed]
        if not entries:
            yield ChangePage(events=[], removed=[], cursor=cursor)
            return
        for at in range(0, len(entries), self._page_size):
            chunk = entries[at : at + self._page_size]
            last = at + self._page_size >= len(entries)
            events, unreadable = split_readable([e for e in chunk if not isinstance(e, str)])
            yield ChangePage(
                events=events,
                removed=[e for e in chunk if isinstance(e, str)],
                cursor=cursor if last else None,
                unreadable=unreadable,
            )

    def _by_sync(
        self, calendar: str, token: str | None, full: bool
    ) -> tuple[list[str], list[str], str]:
        collection = self._collection(calendar)
        try:
            listing = collection.objects_by_sync_token(sync_token=token, load_objects=False)
        except dav_error.NotFoundError:
            raise self._missing(calendar) from None
        except dav_error.DAVError as failure:
            status = _status(failure)
            if token is not None and status in (403, 409, 412):
                raise CursorExpired(
                    f"the server no longer knows the sync token ({status})"
                ) from None
            if token is None and (status is None or status in (403, 404, 405, 501)):
                return self._by_etags(calendar, None)
            raise error_for(status or failure) from failure
        except requests.RequestException as failure:
            raise error_for(failure) from failure
        changed: list[str] = []
        removed: list[str] = []
        own = self._name(self._calendar_url(calendar))  # some servers list the collection too
        for item in listing:
            name = self._name(item.url)
            if not name or name == own:
                continue
            etag = (getattr(item, "props", None) or {}).get(dav.GetEtag.tag)
            (changed if etag else removed).append(name)
        return changed, removed, f"{_SYNC}{listing.sync_token}"

    def _by_etags(self, calendar: str, cursor: str | None) -> tuple[list[str], list[str], str]:
        """ctag + etag comparison, for servers without sync-collection."""
        collection = self._collection(calendar)
        own = self._name(self._calendar_url(calendar))
        try:
            response = collection._query_properties([dav.GetEtag()], depth=1)
            listed = response.expand_simple_props([dav.GetEtag()])
        except dav_error.NotFoundError:
            raise self._missing(calendar) from None
        except (dav_error.DAVError, requests.RequestException) as failure:
            raise error_for(failure) from failure
        now = {
            self._name(url): str(props.get(dav.GetEtag.tag) or "")
            for url, props in listed.items()
            if self._name(url) and self._name(url) != own
        }
        with self._lock:
            before = self._listings.get(calendar)
            self._listings[calendar] = now
        state = hashlib.sha256(repr(sorted(now.items())).encode()).hexdigest()[:32]
        next_cursor = f"{_ETAGS}{state}"
        if cursor is None:
            return sorted(now), [], next_cursor
        if before is None:
            raise CursorExpired("this process has not listed the calendar yet")
        changed = sorted(name for name, etag in now.items() if before.get(name) != etag)
        removed = sorted(name for name in before if name not in now)
        return changed, removed, next_cursor

    def _missing(self, calendar: str) -> NotFound:
        return NotFound(
            f"no calendar collection at {self._calendar_url(calendar)} (404); "
            "check calendar_url and that the account may read it"
        )

    def instances(self, calendar: str, series_id: str, window: Window) -> list[Event]:
        name, recurrence = ics.split_id(series_id)
        if recurrence is not None:
            raise NotFound(f"{series_id} is an occurrence, not a series")
        resource = self._get(calendar, name)
        try:
            return ics.occurrences(calendar, resource, window.start, window.end, self._zone)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as failure:
            log.warning("skipping the occurrences of %s: %s", series_id, failure)
            return []

    def get(self, calendar: str, event_id: str) -> Event:
        name, recurrence = ics.split_id(event_id)
        resource = self._get(calendar, name)
        return self._read(calendar, resource, recurrence)

    def _read(self, calendar: str, resource: ics.Resource, recurrence: str | None) -> Event:
        if recurrence is None:
            for outcome in ics.stored(calendar, resource, self._zone):
                if isinstance(outcome, Event) and outcome.id == resource.name:
                    return outcome
            raise NotFound(f"{resource.name}: no readable event")
        component = ics.occurrence(resource, recurrence, self._zone)
        if component is None:
            raise NotFound(f"{resource.name}#{recurrence}: no such occurrence")
        return ics.event_of(
            calendar,
            ics.occurrence_id(resource.name, component["RECURRENCE-ID"].dt),
            component,
            self._zone,
            series_id=resource.name,
        )

    def update_description(
        self, calendar: str, event_id: str, description: str, etag: str, tag: str | None
    ) -> Event:
        """One component's DESCRIPTION, if it is still as read; the resource by If-Match."""
        name, recurrence = ics.split_id(event_id)
        for attempt in range(_WRITE_ATTEMPTS):
            resource = self._get(calendar, name)
            current = self._read(calendar, resource, recurrence)
            if current.recurring:
                raise NotWritable(f"{event_id} is a series master; write its occurrences")
            if not current.is_organizer_copy:
                raise NotWritable(
                    f"{event_id} is an attendee's copy; only the organizer's is written"
                )
            if current.etag != etag:
                raise PreconditionFailed(f"{event_id} changed since it was read")
            changed, _ = ics.with_description(resource, recurrence, description, tag, self._zone)
            headers = {"Content-Type": "text/calendar; charset=utf-8"}
            if resource.etag:
                headers["If-Match"] = resource.etag
            try:
                answer = self._client.put(
                    self._href(calendar, name), changed.to_ical().decode("utf-8"), headers
                )
            except requests.RequestException as failure:
                raise error_for(failure) from failure
            if answer.status == 412 and attempt + 1 < _WRITE_ATTEMPTS:
                continue  # a sibling occurrence changed meanwhile: read, merge, try again
            if answer.status not in (200, 201, 204):
                raise error_for(answer.status, str(answer.raw or ""))
            written = self.get(calendar, event_id)
            self._deliver(written, recurrence, description)
            return written
        raise PreconditionFailed(f"{event_id}: the resource kept changing")

    def _deliver(self, written: Event, recurrence: str | None, description: str) -> None:
        """The organizer's new description into the attendees' copies syncd holds.

        Best effort, like a scheduling server's delivery: a copy that cannot be
        written now gets the next write, and the organizer's write stands.
        """
        invited = {a.email for a in written.attendees if not a.is_organizer}
        for calendar in self._calendars:
            if calendar == written.calendar_id or calendar.casefold() not in invited:
                continue
            try:
                resource = self._copy_of(calendar, written.ical_uid)
                if resource is None or self._delivered(calendar, resource, recurrence, description):
                    continue
                changed, _ = ics.with_description(
                    resource, recurrence, description, None, self._zone
                )
                # RFC 6638: an attendee's client writing its own copy would make a
                # scheduling server send the organizer a reply; this is no reply.
                headers = {"Content-Type": "text/calendar; charset=utf-8", "Schedule-Reply": "F"}
                if resource.etag:
                    headers["If-Match"] = resource.etag
                answer = self._client.put(
                    self._href(calendar, resource.name), changed.to_ical().decode("utf-8"), headers
                )
                if answer.status not in (200, 201, 204):
                    raise error_for(answer.status, str(answer.raw or ""))
            except (ProviderError, LookupError, ValueError, requests.RequestException) as failure:
                log.warning(
                    "could not deliver the agenda to %s's copy of %s: %s",
                    calendar,
                    written.ical_uid,
                    failure,
                )

    def _delivered(
        self, calendar: str, resource: ics.Resource, recurrence: str | None, description: str
    ) -> bool:
        """Whether the server's own scheduling already gave the copy this description."""
        try:
            return self._read(calendar, resource, recurrence).description == description
        except NotFound:
            return False

    def _copy_of(self, calendar: str, uid: str) -> ics.Resource | None:
        """An attendee's copy of ``uid``: by the organizer's object name, else by UID."""
        name = self._name(self._href(calendar, f"{uid}.ics"))
        try:
            return self._get(calendar, name)
        except NotFound:
            pass
        try:
            found = self._collection(calendar).object_by_uid(uid)
        except dav_error.NotFoundError:
            return None
        except (dav_error.DAVError, requests.RequestException) as failure:
            raise error_for(failure) from failure
        return self._get(calendar, self._name(found.url))


def _status(failure: dav_error.DAVError) -> int | None:
    """The HTTP status a caldav error carries in its text ("412 Precondition Failed")."""
    if isinstance(failure, dav_error.AuthorizationError):
        return 403 if "403" in str(failure) or "Forbidden" in str(failure) else 401
    if isinstance(failure, dav_error.NotFoundError):
        return 404
    text = str(getattr(failure, "reason", "") or "") + " " + str(failure)
    for token in text.replace("'", " ").split():
        if token.isdigit() and len(token) == 3:
            return int(token)
    return None
