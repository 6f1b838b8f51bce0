"""events.list, events.instances and events.get over the store, with page and sync tokens.

A listing is computed once, when its first page is asked for, and kept as a
snapshot: ``nextPageToken`` names page N of that snapshot, so later pages
neither lose nor repeat entries while the calendar changes underneath, and
``nextSyncToken`` (last page only) names the change-log position the snapshot
was taken at. Both tokens are opaque and bound to this emulator (a salt), the
calendar and, for sync tokens, the calendar's epoch: ``expire`` bumps the
epoch, and any token that does not decode to a current position is answered
410 ``fullSyncRequired``, as Google does for tokens it no longer knows.

Semantics, from the events.list/instances reference:

* Full sync (no ``syncToken``): ``timeMin`` bounds the end (exclusive),
  ``timeMax`` the start (exclusive). Without ``singleEvents``: single events,
  masters with any occurrence in range, and the calendar's exceptions in
  range; cancelled exceptions are listed even without ``showDeleted`` (the
  reference says so). With ``singleEvents``: instances instead of masters,
  cancelled ones only with ``showDeleted``. ``showDeleted`` also lists
  deleted events (with details on the organizer's calendar).
* Incremental (``syncToken``): every copy and exception that changed since
  the token, whatever its time, deleted ones as ``status: cancelled`` (stubs
  unless ``showDeleted``); ``singleEvents`` expands a changed master into its
  instances. ``iCalUID``, ``orderBy``, ``privateExtendedProperty``, ``q``,
  ``sharedExtendedProperty``, ``timeMin``, ``timeMax`` and ``updatedMin``
  next to a ``syncToken`` are a 400.
* instances: ``timeMin`` is inclusive here (as documented), cancelled
  instances only with ``showDeleted``; an id that is not a live series
  master is a 404.
* get: a deleted event answers 200 ``status: cancelled`` ("the get method
  always returns them"); an id never seen is a 404.
* An endless series listed without ``timeMax`` stops after
  ``expansion_limit`` occurrences.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .google_errors import ApiError
from .google_model import Item, Tombstone, originals, overlaps
from .google_resources import parse_rfc3339, render, rfc3339_ms, tombstone
from .google_state import CalendarStore

__all__ = ["Queries"]

Query = Mapping[str, list[str]]

_SYNC_INCOMPATIBLE = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)
_MAX_RESULTS_CAP = 2500
_DEFAULT_MAX_RESULTS = 250
_SNAPSHOTS_KEPT = 512
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class _Snapshot:
    calendar: str
    scope: str  # "list" or "instances:{event id}"; a page token only resumes its own
    pages: list[list[dict[str, Any]]]
    envelope: dict[str, Any]
    sync_token: str | None


class Queries:
    """The read side of the Calendar API for one store."""

    def __init__(
        self, store: CalendarStore, *, page_size: int = 250, expansion_limit: int = 1000
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.page_size = page_size
        self.expansion_limit = expansion_limit
        self._store = store
        self._salt = secrets.token_hex(4)
        self._snapshots: OrderedDict[str, _Snapshot] = OrderedDict()

    # ------------------------------------------------------------------ methods

    def list_events(self, calendar: str, query: Query) -> dict[str, Any]:
        with self._store.lock:
            resumed = self._resume(calendar, "list", query)
            if resumed is not None:
                return resumed
            single = _bool(query, "singleEvents")
            show_deleted = _bool(query, "showDeleted")
            sync_token = _one(query, "syncToken")
            if sync_token is not None:
                clash = next((name for name in _SYNC_INCOMPATIBLE if name in query), None)
                if clash is not None:
                    raise ApiError(
                        400,
                        "invalid",
                        f"Sync token cannot be combined with the {clash} parameter.",
                        location=clash,
                        location_type="parameter",
                    )
                since = self._since(calendar, sync_token)
                entries = self._changes(calendar, since, single, show_deleted)
            else:
                low, high = _window(query)
                updated_min = _time(query, "updatedMin")
                entries = self._full(
                    calendar, low, high, single, show_deleted or updated_min is not None
                )
                entries = _filtered(entries, query, updated_min)
                entries = _ordered(entries, _one(query, "orderBy"), single)
            return self._snapshot(calendar, "list", entries, query, with_sync_token=True)

    def instances(self, calendar: str, event_id: str, query: Query) -> dict[str, Any]:
        with self._store.lock:
            scope = f"instances:{event_id}"
            resumed = self._resume(calendar, scope, query)
            if resumed is not None:
                return resumed
            hit = self._store.find(calendar, event_id)
            if hit is None or hit.moment is not None or hit.item.recurrence is None:
                raise ApiError(404, "notFound")
            low, high = _window(query)
            wanted = _time(query, "originalStart")
            show_deleted = _bool(query, "showDeleted")
            entries: list[dict[str, Any]] = []
            for moment in self._moments(hit.item, low, high, inclusive_low=True):
                if wanted is not None and moment != wanted:
                    continue
                resource = render(hit.item, calendar, hit.copy, moment)
                if resource["status"] == "cancelled" and not show_deleted:
                    continue
                entries.append(resource)
            return self._snapshot(calendar, scope, entries, query, with_sync_token=False)

    def get(self, calendar: str, event_id: str) -> dict[str, Any]:
        with self._store.lock:
            hit = self._store.find(calendar, event_id)
            if hit is not None:
                return render(hit.item, calendar, hit.copy, hit.moment)
            stone = self._store.calendar(calendar).tombstones.get(event_id)
            if stone is not None:
                return tombstone(event_id, stone, details=True)
            raise ApiError(404, "notFound")

    # ------------------------------------------------------------ result sets

    def _full(
        self,
        calendar: str,
        low: datetime | None,
        high: datetime | None,
        single: bool,
        show_deleted: bool,
    ) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        for item, copy in self._store.held(calendar):
            if item.recurrence is None:
                if overlaps(item.start, item.end, low, high):
                    entries.append(render(item, calendar, copy, None))
                continue
            if single:
                for moment in self._moments(item, low, high):
                    resource = render(item, calendar, copy, moment)
                    if resource["status"] != "cancelled" or show_deleted:
                        entries.append(resource)
                continue
            shown = sorted(m for m in copy.occurrences if self._shows(item, m, low, high))
            if shown or next(originals(item, low, high, 1), None) is not None:
                entries.append(render(item, calendar, copy, None))
            entries.extend(render(item, calendar, copy, moment) for moment in shown)
        if show_deleted:
            for event_id, stone in self._store.calendar(calendar).tombstones.items():
                if single and "recurrence" in stone.resource:
                    continue  # singleEvents lists deleted instances, never deleted masters
                if overlaps(stone.start, stone.end, low, high):
                    entries.append(tombstone(event_id, stone, details=True))
        return sorted(entries, key=lambda r: (_start_of(r), r["id"]))

    def _changes(
        self, calendar: str, since: int, single: bool, show_deleted: bool
    ) -> list[dict[str, Any]]:
        """Each id changed after ``since``, once, in the order of its latest change."""
        log = self._store.calendar(calendar).log
        latest: dict[str, None] = {}
        for _, event_id in log[bisect.bisect_right(log, since, key=lambda entry: entry[0]) :]:
            latest.pop(event_id, None)
            latest[event_id] = None
        found: dict[str, dict[str, Any]] = {}
        tombstones = self._store.calendar(calendar).tombstones
        for event_id in latest:
            hit = self._store.find(calendar, event_id)
            resources: Iterable[dict[str, Any]]
            if hit is None:
                stone: Tombstone | None = tombstones.get(event_id)
                if stone is None:
                    continue
                resources = [tombstone(event_id, stone, details=show_deleted)]
            elif single and hit.moment is None and hit.item.recurrence is not None:
                resources = [
                    render(hit.item, calendar, hit.copy, moment)
                    for moment in self._moments(hit.item, None, None)
                ]
            else:
                resources = [render(hit.item, calendar, hit.copy, hit.moment)]
            for resource in resources:
                found.pop(resource["id"], None)
                found[resource["id"]] = resource
        return list(found.values())

    def _moments(
        self,
        item: Item,
        low: datetime | None,
        high: datetime | None,
        *,
        inclusive_low: bool = False,
    ) -> list[datetime]:
        """Original starts of the occurrences in range, in the order they now happen."""
        reach = None if low is None else low - timedelta(microseconds=1)
        candidates = set(originals(item, reach, high, self.expansion_limit)) | set(item.shifts)
        shown = [m for m in candidates if self._shows(item, m, low, high, inclusive_low)]
        return sorted(shown, key=lambda m: (item.slot(m).start, m))

    def _shows(
        self,
        item: Item,
        moment: datetime,
        low: datetime | None,
        high: datetime | None,
        inclusive_low: bool = False,
    ) -> bool:
        """Where an occurrence is now decides; a cancelled one counts where it was."""
        slot = item.slot(moment)
        if overlaps(slot.start, slot.end, low, high, inclusive_low=inclusive_low):
            return True
        return slot.cancelled and overlaps(
            moment, moment + item.duration, low, high, inclusive_low=inclusive_low
        )

    # ------------------------------------------------------------------ paging

    def _snapshot(
        self,
        calendar: str,
        scope: str,
        entries: list[dict[str, Any]],
        query: Query,
        *,
        with_sync_token: bool,
    ) -> dict[str, Any]:
        size = min(_max_results(query), self.page_size)
        pages = [entries[i : i + size] for i in range(0, len(entries), size)] or [[]]
        cal = self._store.calendar(calendar)
        envelope = {
            "kind": "calendar#events",
            "etag": f'"p{cal.epoch:x}{cal.seq:012x}"',
            "summary": calendar,
            "updated": rfc3339_ms(cal.updated),
            "timeZone": "UTC",
            "accessRole": "owner",
            "defaultReminders": [{"method": "popup", "minutes": 10}],
        }
        sync = self._sync_token(calendar) if with_sync_token else None
        snapshot = _Snapshot(calendar, scope, pages, envelope, sync)
        key = secrets.token_urlsafe(9)
        self._snapshots[key] = snapshot
        while len(self._snapshots) > _SNAPSHOTS_KEPT:
            self._snapshots.popitem(last=False)
        return self._page(key, snapshot, 0)

    def _page(self, key: str, snapshot: _Snapshot, index: int) -> dict[str, Any]:
        answer = dict(snapshot.envelope, items=snapshot.pages[index])
        if index + 1 < len(snapshot.pages):
            answer["nextPageToken"] = _encode(f"{self._salt}:{key}:{index + 1}")
        elif snapshot.sync_token is not None:
            answer["nextSyncToken"] = snapshot.sync_token
        return answer

    def _resume(self, calendar: str, scope: str, query: Query) -> dict[str, Any] | None:
        token = _one(query, "pageToken")
        if token is None:
            return None
        parts = _decode(token).split(":")
        snapshot = None
        if len(parts) == 3 and parts[0] == self._salt and parts[2].isdigit():
            snapshot = self._snapshots.get(parts[1])
        index = int(parts[2]) if snapshot is not None else -1
        if (
            snapshot is None
            or snapshot.calendar != calendar
            or snapshot.scope != scope
            or not 0 <= index < len(snapshot.pages)
        ):
            raise ApiError(400, "invalid", "Invalid page token.", "pageToken", "parameter")
        return self._page(parts[1], snapshot, index)

    # -------------------------------------------------------------- sync tokens

    def _sync_token(self, calendar: str) -> str:
        cal = self._store.calendar(calendar)
        return _encode(f"emu1:{self._salt}:{calendar}:{cal.epoch}:{cal.seq}")

    def _since(self, calendar: str, token: str) -> int:
        """The log position a sync token names; 410 for anything not current."""
        cal = self._store.calendar(calendar)
        parts = _decode(token).rsplit(":", 2)
        head = parts[0].split(":", 2) if parts else []
        if (
            len(parts) == 3
            and len(head) == 3
            and head[:2] == ["emu1", self._salt]
            and head[2] == calendar
            and parts[1] == str(cal.epoch)
            and parts[2].isdigit()
            and int(parts[2]) <= cal.seq
        ):
            return int(parts[2])
        raise ApiError(410, "fullSyncRequired", location="syncToken", location_type="parameter")


# ---------------------------------------------------------------- query helpers


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""


def _one(query: Query, name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _bool(query: Query, name: str) -> bool:
    value = _one(query, name)
    if value is None:
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise ApiError(400, "invalid", f"Invalid boolean value: '{value}'.", name, "parameter")


def _time(query: Query, name: str) -> datetime | None:
    value = _one(query, name)
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise ApiError(400, "badRequest", "Bad Request", name, "parameter") from None


def _window(query: Query) -> tuple[datetime | None, datetime | None]:
    low, high = _time(query, "timeMin"), _time(query, "timeMax")
    if low is not None and high is not None and high <= low:
        raise ApiError(400, "timeRangeEmpty", location="timeMax", location_type="parameter")
    return low, high


def _max_results(query: Query) -> int:
    value = _one(query, "maxResults")
    if value is None:
        return _DEFAULT_MAX_RESULTS
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ApiError(400, "invalid", f"Invalid value '{value}'.", "maxResults", "parameter")
    return min(number, _MAX_RESULTS_CAP)


def _start_of(resource: Mapping[str, Any]) -> datetime:
    when = resource.get("start") or resource.get("originalStartTime") or {}
    if "dateTime" in when:
        return parse_rfc3339(when["dateTime"])
    if "date" in when:
        return datetime.fromisoformat(when["date"]).replace(tzinfo=UTC)
    return _EPOCH


def _updated_of(resource: Mapping[str, Any]) -> datetime:
    value = resource.get("updated")
    return parse_rfc3339(value) if isinstance(value, str) else _EPOCH


def _filtered(
    entries: list[dict[str, Any]], query: Query, updated_min: datetime | None
) -> list[dict[str, Any]]:
    """The full-sync filters: iCalUID, q, extended properties, event types, updatedMin."""
    uid = _one(query, "iCalUID")
    text = (_one(query, "q") or "").casefold()
    private = [
        _constraint(c, "privateExtendedProperty") for c in query.get("privateExtendedProperty", [])
    ]
    shared = [
        _constraint(c, "sharedExtendedProperty") for c in query.get("sharedExtendedProperty", [])
    ]
    types = set(query.get("eventTypes", []))

    def keep(resource: dict[str, Any]) -> bool:
        props = resource.get("extendedProperties", {})
        searchable = " ".join(
            [str(resource.get("summary", "")), str(resource.get("description", ""))]
            + [
                str(a.get("email", "")) + " " + str(a.get("displayName", ""))
                for a in resource.get("attendees", [])
            ]
            + [str(resource.get("organizer", {}).get("email", ""))]
        ).casefold()
        return (
            (uid is None or resource.get("iCalUID") == uid)
            and (not text or text in searchable)
            and all(props.get("private", {}).get(k) == v for k, v in private)
            and all(props.get("shared", {}).get(k) == v for k, v in shared)
            and (not types or resource.get("eventType", "default") in types)
            and (updated_min is None or _updated_of(resource) >= updated_min)
        )

    return [resource for resource in entries if keep(resource)]


def _constraint(text: str, name: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ApiError(400, "invalid", f"Invalid value '{text}'.", name, "parameter")
    return key, value


def _ordered(
    entries: list[dict[str, Any]], order_by: str | None, single: bool
) -> list[dict[str, Any]]:
    if order_by is None:
        return entries
    if order_by == "startTime":
        if not single:
            raise ApiError(
                400,
                "invalid",
                "The requested ordering is not available for the particular query.",
                "orderBy",
                "parameter",
            )
        return sorted(entries, key=lambda r: (_start_of(r), r["id"]))
    if order_by == "updated":
        return sorted(entries, key=lambda r: (_updated_of(r), r["id"]))
    raise ApiError(400, "invalid", f"Invalid value '{order_by}'.", "orderBy", "parameter")
