"""The emulated calendars' state and every change to it, from people or from API writes.

One ``CalendarStore`` holds all calendars behind one re-entrant lock (the HTTP
server is threaded and tests change the world from their own thread). Each
change of a copy, or of one occurrence in a copy, gets a fresh etag (from one
counter, never reused), a fresh ``updated`` (strictly increasing, millisecond
resolution) and an entry in its calendar's change log. When the outermost
change finishes, ``listener`` hears once per calendar that changed; the push
channels hang off that.

Semantics chosen where the reference leaves room (see also google.py):

* Organizer edits (description, shared extended properties) reach every
  copy; an attendee may edit the description of their own copy only through
  the world API (a person typing), never through PATCH (403).
* A master's change re-etags the exceptions that show it (description not
  overridden), so the change is seen on every occurrence that displays it.
* ``move_occurrence`` and ``cancel_occurrence`` turn the occurrence into an
  exception in every copy; moving a single event moves it everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from providers.memory import Recurrence
from syncd.model import Attendee, EventType, Response, utc

from .google_errors import ApiError
from .google_model import (
    Calendar,
    Copy,
    CopyState,
    Item,
    Shift,
    Tombstone,
    instance_id,
    is_occurrence,
    parse_instance_id,
)
from .google_resources import render

__all__ = ["CalendarStore", "Hit"]

_ETAG_BASE = 3_000_000_000_000_000
_FOREVER = datetime(9999, 12, 31, tzinfo=UTC)
_PATCHABLE = frozenset({"description", "extendedProperties"})


@dataclass(frozen=True)
class Hit:
    """A live event id resolved in one calendar; ``moment`` None means master or single."""

    item: Item
    calendar: str
    copy: Copy
    moment: datetime | None


class _Clock:
    """``updated`` values that never repeat or go back, so ordering by them is exact."""

    def __init__(self) -> None:
        self._last = datetime(1970, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        moment = datetime.now(UTC)
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        if moment <= self._last:
            moment = self._last + timedelta(milliseconds=1)
        self._last = moment
        return moment


class CalendarStore:
    """Every emulated person's primary calendar."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.listener: Callable[[str], None] | None = None
        self._clock = _Clock()
        self._counter = 0
        self._calendars: dict[str, Calendar] = {}
        self._folded: dict[str, str] = {}
        self._items: dict[str, Item] = {}
        self._by_id: dict[str, Item] = {}
        self._touched: set[str] = set()
        self._depth = 0

    # ---------------------------------------------------------------- calendars

    def add_calendar(self, address: str) -> None:
        """Hold ``address``'s calendar, with copies of what it was already invited to."""
        with self._mutation():
            if address.casefold() in self._folded:
                return
            self._calendars[address] = Calendar(address, created=self._clock.now())
            self._folded[address.casefold()] = address
            for item in self._items.values():
                if address in self._holders(item):
                    self._add_copy(item, address)

    def address(self, calendar: str) -> str | None:
        """The held calendar's address as it was added, whatever the case; None if not held."""
        return self._folded.get(calendar.casefold())

    def calendars(self) -> list[str]:
        with self.lock:
            return list(self._calendars)

    def calendar(self, address: str) -> Calendar:
        return self._calendars[address]

    def expire(self, calendar: str) -> None:
        """Invalidate every sync token issued so far for ``calendar``."""
        with self.lock:
            self._calendars[self._require_calendar(calendar)].epoch += 1

    # ------------------------------------------------------------ world-building

    def create_event(
        self,
        organizer: str,
        attendees: Sequence[str | Attendee],
        title: str,
        start: datetime,
        end: datetime,
        *,
        description: str = "",
        all_day: bool = False,
        event_type: EventType = EventType.DEFAULT,
        recurrence: Recurrence | None = None,
        ical_uid: str | None = None,
    ) -> str:
        start, end = utc(start), utc(end)
        if end <= start:
            raise ValueError("an event must end after it starts")
        with self._mutation():
            event_id = f"ev{self._next():010d}"
            uid = ical_uid if ical_uid is not None else f"{event_id}@google.com"
            if uid in self._items:
                raise ValueError(f"iCalUID {uid!r} already exists")
            item = Item(
                id=event_id,
                ical_uid=uid,
                organizer=organizer,
                attendees=_attendee_list(organizer, attendees),
                title=title,
                start=start,
                end=end,
                description=description,
                all_day=all_day,
                event_type=event_type,
                recurrence=recurrence,
                created=self._clock.now(),
            )
            self._items[uid] = item
            self._by_id[event_id] = item
            for calendar in self._holders(item):
                self._add_copy(item, calendar)
            return uid

    def copy_id(self, calendar: str, ical_uid: str, original_start: datetime | None = None) -> str:
        with self.lock:
            item = self._item(ical_uid)
            if self._require_calendar(calendar) not in item.copies:
                raise KeyError(f"{calendar} holds no copy of {ical_uid}")
            if original_start is None:
                return item.id
            moment = utc(original_start)
            if not is_occurrence(item, moment):
                raise KeyError(f"{ical_uid} has no occurrence at {moment.isoformat()}")
            return instance_id(item, moment)

    def edit_description(self, calendar: str, event_id: str, description: str) -> None:
        """A person typing into their client: the organizer's edit reaches every copy."""
        with self._mutation():
            hit = self._require(calendar, event_id)
            if self.is_organizer(hit.item, hit.calendar):
                self._write_everywhere(hit, description=description)
            else:
                self._write(hit.item, hit.calendar, hit.moment, description=description)

    def move_occurrence(
        self, ical_uid: str, original_start: datetime, new_start: datetime, new_end: datetime
    ) -> None:
        moment, new_start, new_end = utc(original_start), utc(new_start), utc(new_end)
        if new_end <= new_start:
            raise ValueError("an event must end after it starts")
        with self._mutation():
            item = self._item(ical_uid)
            if item.recurrence is None:
                if moment != item.start:
                    raise KeyError(f"{ical_uid} does not start at {moment.isoformat()}")
                item.start, item.end = new_start, new_end
                item.sequence += 1
                self._touch_all(item)
                return
            self._require_occurrence(item, moment)
            if item.slot(moment).cancelled:
                raise ValueError(f"occurrence {moment.isoformat()} of {ical_uid} is cancelled")
            item.shifts[moment] = Shift(new_start, new_end)
            self._touch_occurrence(item, moment)

    def cancel_occurrence(self, ical_uid: str, original_start: datetime) -> None:
        """The organizer cancels one occurrence; cancelling a single event deletes it."""
        moment = utc(original_start)
        with self._mutation():
            item = self._item(ical_uid)
            if item.recurrence is None:
                if moment != item.start:
                    raise KeyError(f"{ical_uid} does not start at {moment.isoformat()}")
                self.delete_event(ical_uid)
                return
            self._require_occurrence(item, moment)
            item.shifts[moment] = replace(item.slot(moment), cancelled=True)
            self._touch_occurrence(item, moment)

    def delete_event(self, ical_uid: str) -> None:
        """The organizer deletes the event or whole series from every calendar."""
        with self._mutation():
            item = self._item(ical_uid)
            for calendar in list(item.copies):
                self._remove_copy(item, calendar)
            del self._items[ical_uid]
            del self._by_id[item.id]

    def update_event(
        self,
        ical_uid: str,
        *,
        title: str | None = None,
        attendees: Sequence[str | Attendee] | None = None,
    ) -> None:
        """A series-level (or single-event) edit; invitees gained or lost gain or lose copies."""
        with self._mutation():
            item = self._item(ical_uid)
            if title is not None:
                item.title = title
            if attendees is not None:
                item.attendees = _attendee_list(item.organizer, attendees)
            item.sequence += 1
            holders = self._holders(item)
            for calendar in list(item.copies):
                if calendar not in holders:
                    self._remove_copy(item, calendar)
            self._touch_all(item)
            for calendar in holders:
                if calendar not in item.copies:
                    self._add_copy(item, calendar)

    def description(self, calendar: str, event_id: str) -> str:
        with self.lock:
            hit = self._require(calendar, event_id)
            return str(render(hit.item, hit.calendar, hit.copy, hit.moment).get("description", ""))

    # ---------------------------------------------------------------------- API

    def find(self, calendar: str, event_id: str) -> Hit | None:
        """Resolve a master, single or instance id (generated or exception) in one calendar."""
        item = self._by_id.get(event_id)
        if item is not None:
            copy = item.copies.get(calendar)
            return None if copy is None else Hit(item, calendar, copy, None)
        parsed = parse_instance_id(event_id)
        if parsed is None:
            return None
        item = self._by_id.get(parsed[0])
        if item is None or calendar not in item.copies:
            return None
        moment = parsed[1]
        if not is_occurrence(item, moment) or instance_id(item, moment) != event_id:
            return None
        return Hit(item, calendar, item.copies[calendar], moment)

    def held(self, calendar: str) -> Iterator[tuple[Item, Copy]]:
        """The items ``calendar`` holds a copy of, oldest first (a stable order)."""
        for item in self._items.values():
            copy = item.copies.get(calendar)
            if copy is not None:
                yield item, copy

    def is_organizer(self, item: Item, calendar: str) -> bool:
        return calendar.casefold() == item.organizer.casefold()

    def patch(
        self, calendar: str, event_id: str, body: Any, if_match: str | None
    ) -> dict[str, Any]:
        """events.patch: conditional, organizer-only for shared fields, merged per PATCH.

        Order of checks: the event must exist (404), the etag must match (412),
        then the body must be one we can apply (400) by someone allowed to
        (403).
        """
        with self._mutation():
            hit = self.find(calendar, event_id)
            if hit is None:
                raise ApiError(404, "notFound")
            current = render(hit.item, calendar, hit.copy, hit.moment)["etag"]
            if if_match is not None and if_match.strip() not in ("*", current):
                raise ApiError(412, "conditionNotMet", location="If-Match", location_type="header")
            description, private, shared = _patch_fields(body)
            organizer = self.is_organizer(hit.item, calendar)
            if not organizer and (description is not None or shared):
                raise ApiError(403, "forbiddenForNonOrganizer")
            if organizer and (description is not None or shared):
                self._write_everywhere(hit, description=description, shared=shared, private=private)
            else:
                self._write(hit.item, calendar, hit.moment, private=private)
            return render(hit.item, calendar, hit.copy, hit.moment)

    # ---------------------------------------------------------------- internals

    @contextmanager
    def _mutation(self) -> Iterator[None]:
        """Hold the lock; when the outermost change ends, tell the listener what changed."""
        with self.lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    touched, self._touched = self._touched, set()
                    listener = self.listener
                    if listener is not None:
                        for calendar in sorted(touched):
                            listener(calendar)

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def _etag(self) -> str:
        return f'"{_ETAG_BASE + self._next()}"'

    def _fresh(self, description: str | None) -> CopyState:
        return CopyState(self._etag(), self._clock.now(), description)

    def _retag(self, state: CopyState) -> None:
        state.etag = self._etag()
        state.updated = self._clock.now()

    def _require_calendar(self, calendar: str) -> str:
        address = self.address(calendar)
        if address is None:
            raise KeyError(f"no calendar {calendar!r}")
        return address

    def _require(self, calendar: str, event_id: str) -> Hit:
        hit = self.find(self._require_calendar(calendar), event_id)
        if hit is None:
            raise KeyError(f"no event {event_id!r} in {calendar}")
        return hit

    def _item(self, ical_uid: str) -> Item:
        try:
            return self._items[ical_uid]
        except KeyError:
            raise KeyError(f"no event with iCalUID {ical_uid!r}") from None

    def _require_occurrence(self, item: Item, moment: datetime) -> None:
        if not is_occurrence(item, moment):
            raise KeyError(f"{item.ical_uid} has no occurrence at {moment.isoformat()}")

    def _holders(self, item: Item) -> list[str]:
        """Calendars that get a copy: the organizer's and invited people's that we hold."""
        wanted = [item.organizer] + [
            a.email for a in item.attendees if not (a.is_resource or a.is_group)
        ]
        holders: list[str] = []
        for email in wanted:
            address = self.address(email)
            if address is not None and address not in holders:
                holders.append(address)
        return holders

    def _log(self, calendar: str, event_id: str) -> None:
        cal = self._calendars[calendar]
        cal.seq += 1
        cal.log.append((cal.seq, event_id))
        cal.updated = self._clock.now()
        self._touched.add(calendar)

    def _add_copy(self, item: Item, calendar: str) -> None:
        """A new copy reads as the organizer's invitation currently does."""
        source = next((c for cal, c in item.copies.items() if self.is_organizer(item, cal)), None)
        copy = Copy(main=self._fresh(item.description))
        if source is not None:
            copy.main.shared = dict(source.main.shared)
        item.copies[calendar] = copy
        cal = self._calendars[calendar]
        cal.tombstones.pop(item.id, None)
        self._log(calendar, item.id)
        exceptions = set(item.shifts) | (set(source.occurrences) if source else set())
        for moment in sorted(exceptions):
            origin = source.occurrences.get(moment) if source else None
            state = self._fresh(origin.description if origin else None)
            if origin is not None:
                state.shared = dict(origin.shared)
            copy.occurrences[moment] = state
            event_id = instance_id(item, moment)
            cal.tombstones.pop(event_id, None)
            self._log(calendar, event_id)

    def _remove_copy(self, item: Item, calendar: str) -> None:
        """Leave a tombstone for the copy and each of its exceptions, then drop it."""
        copy = item.copies[calendar]
        cal = self._calendars[calendar]
        organizer = self.is_organizer(item, calendar)
        moments: list[datetime | None] = [None, *sorted(copy.occurrences)]
        for moment in moments:
            resource = render(item, calendar, copy, moment)
            resource["status"] = "cancelled"
            if moment is not None:
                slot = item.slot(moment)
            elif item.recurrence is not None:
                slot = Shift(item.start, _FOREVER)  # a series spans all its occurrences
            else:
                slot = Shift(item.start, item.end)
            stone = Tombstone(
                etag=self._etag(),
                updated=self._clock.now(),
                start=slot.start,
                end=slot.end,
                resource=resource,
                organizer_copy=organizer,
            )
            event_id = resource["id"]
            cal.tombstones[event_id] = stone
            self._log(calendar, event_id)
        del item.copies[calendar]

    def _touch_all(self, item: Item) -> None:
        """A series-level edit changes every copy and every exception in it."""
        for calendar, copy in item.copies.items():
            self._retag(copy.main)
            self._log(calendar, item.id)
            for moment, state in copy.occurrences.items():
                self._retag(state)
                self._log(calendar, instance_id(item, moment))

    def _touch_occurrence(self, item: Item, moment: datetime) -> None:
        for calendar, copy in item.copies.items():
            state = copy.occurrences.get(moment)
            if state is None:
                copy.occurrences[moment] = self._fresh(None)
            else:
                self._retag(state)
            self._log(calendar, instance_id(item, moment))

    def _write_everywhere(
        self,
        hit: Hit,
        *,
        description: str | None = None,
        shared: dict[str, str] | None = None,
        private: dict[str, str] | None = None,
    ) -> None:
        """The organizer's change of what every copy shows; ``private`` stays in their own."""
        if hit.moment is None and description is not None:
            hit.item.description = description
        for calendar in hit.item.copies:
            mine = private if calendar == hit.calendar else None
            self._write(
                hit.item, calendar, hit.moment, description=description, shared=shared, private=mine
            )

    def _write(
        self,
        item: Item,
        calendar: str,
        moment: datetime | None,
        *,
        description: str | None = None,
        private: dict[str, str] | None = None,
        shared: dict[str, str] | None = None,
    ) -> None:
        """Change one copy (or one occurrence of it, which becomes an exception)."""
        copy = item.copies[calendar]
        if moment is None:
            state = copy.main
        else:
            state = copy.occurrences.setdefault(moment, self._fresh(None))
        if description is not None:
            state.description = description
        if private:
            state.private.update(private)
        if shared:
            state.shared.update(shared)
        self._retag(state)
        self._log(calendar, item.id if moment is None else instance_id(item, moment))
        if moment is None:
            # Exceptions that show the master's fields have changed with it.
            for other, exception in copy.occurrences.items():
                shows_master = exception.description is None or bool(private or shared)
                if shows_master and not item.slot(other).cancelled:
                    self._retag(exception)
                    self._log(calendar, instance_id(item, other))


def _patch_fields(body: Any) -> tuple[str | None, dict[str, str], dict[str, str]]:
    """The description and extended properties of a PATCH body; 400 for anything else."""
    if not isinstance(body, dict):
        raise ApiError(400, "parseError", "This API does not support parsing form-encoded input.")
    unknown = sorted(set(body) - _PATCHABLE)
    if unknown:
        raise ApiError(
            400,
            "invalid",
            f"The emulator cannot patch {', '.join(unknown)}; only description and "
            "extendedProperties are supported.",
        )
    description = body.get("description")
    if "description" in body and description is None:
        description = ""
    if description is not None and not isinstance(description, str):
        raise ApiError(400, "invalid", "Invalid value for description.")
    props = body.get("extendedProperties") or {}
    if not isinstance(props, dict):
        raise ApiError(400, "invalid", "Invalid value for extendedProperties.")
    return description, _string_map(props, "private"), _string_map(props, "shared")


def _string_map(props: dict[str, Any], scope: str) -> dict[str, str]:
    values = props.get(scope) or {}
    if not isinstance(values, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in values.items()
    ):
        raise ApiError(400, "invalid", f"Invalid value for extendedProperties.{scope}.")
    return dict(values)


def _attendee_list(organizer: str, people: Sequence[str | Attendee]) -> tuple[Attendee, ...]:
    """Every copy lists the same people, the organizer among them and flagged."""
    result: list[Attendee] = []
    seen: set[str] = set()
    for person in people:
        attendee = Attendee(person) if isinstance(person, str) else person
        folded = attendee.email.casefold()
        if folded in seen:
            continue
        seen.add(folded)
        is_organizer = folded == organizer.casefold()
        if is_organizer and attendee.response is Response.NEEDS_ACTION:
            attendee = replace(attendee, response=Response.ACCEPTED)
        result.append(replace(attendee, is_organizer=is_organizer))
    if organizer.casefold() not in seen:
        result.insert(0, Attendee(organizer, is_organizer=True, response=Response.ACCEPTED))
    return tuple(result)
