"""The emulated calendars' state and every change to it, from people or from API writes.

The model is ``providers.calendar_model``, its changes ``providers.calendar_world``;
this store adds
Google's bookkeeping. All calendars sit behind one re-entrant lock (the HTTP
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
  overridden, or any extended property written) unless they are cancelled, so
  the change is seen on every occurrence that displays it.
* ``move_occurrence`` and ``cancel_occurrence`` turn the occurrence into an
  exception in every copy; moving a single event moves it everywhere. Edits
  of the event itself (its time, title or invitees) bump its ``sequence``.
* A deleted copy and each of its exceptions leave a tombstone in that
  calendar; a copy coming back takes its tombstones away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from providers.calendar_model import Clock, Draft, Write
from providers.calendar_model import Hit as _Hit
from providers.calendar_world import CalendarWorld

from ._mail import Outbox
from .google_errors import ApiError
from .google_model import (
    Calendar,
    Copy,
    CopyState,
    Item,
    Shift,
    Tombstone,
    instance_id,
    parse_instance_id,
)
from .google_resources import render

__all__ = ["CalendarStore", "Hit", "Props"]

_ETAG_BASE = 3_000_000_000_000_000
_FOREVER = datetime(9999, 12, 31, tzinfo=UTC)
_PATCHABLE = frozenset({"description", "extendedProperties"})


@dataclass(frozen=True)
class Props:
    """Extended properties a write sets: ``private`` to the copy written, ``shared`` to all."""

    private: dict[str, str]
    shared: dict[str, str]


_NONE = Props({}, {})

Hit = _Hit[Item, Copy]
"""A live event id resolved in one calendar; ``moment`` None means master or single."""


class CalendarStore(CalendarWorld[Item, Copy, CopyState, Props]):
    """Every emulated person's primary calendar."""

    def __init__(self) -> None:
        super().__init__()
        self.listener: Callable[[str], None] | None = None
        self._clock = Clock(timedelta(milliseconds=1))
        self._calendars: dict[str, Calendar] = {}
        self._touched: set[str] = set()
        #: The update mails ``sendUpdates`` asked for (``_mail``).
        self.outbox = Outbox()

    # ---------------------------------------------------------------- calendars

    def calendars(self) -> list[str]:
        with self.lock:
            return list(self._calendars)

    def calendar(self, address: str) -> Calendar:
        return self._calendars[address]

    def description(self, calendar: str, event_id: str) -> str:
        with self.lock:
            hit = self._require(calendar, event_id)
            return str(render(hit.item, hit.calendar, hit.copy, hit.moment).get("description", ""))

    # ---------------------------------------------------------------------- API

    def held(self, calendar: str) -> Iterator[tuple[Item, Copy]]:
        """The items ``calendar`` holds a copy of, oldest first (a stable order)."""
        for item in self._items.values():
            copy = item.copies.get(calendar)
            if copy is not None:
                yield item, copy

    def is_organizer(self, item: Item, calendar: str) -> bool:
        return item.is_organizer(calendar)

    def patch(
        self,
        calendar: str,
        event_id: str,
        body: Any,
        if_match: str | None,
        send_updates: str | None = None,
    ) -> dict[str, Any]:
        """events.patch: conditional, organizer-only for shared fields, merged per PATCH.

        Order of checks: the event must exist (404), the etag must match (412),
        then the body must be one we can apply (400) by someone allowed to
        (403).

        ``sendUpdates`` decides who is mailed about an organizer's change of
        what guests see: ``all`` every guest, ``externalOnly`` the guests
        whose calendars this server does not hold, ``none`` (and, as the
        reference gives no other default for API calls, absent) nobody.
        """
        with self._mutation():
            hit = self.find(calendar, event_id)
            if hit is None:
                raise ApiError(404, "notFound")
            current = render(hit.item, calendar, hit.copy, hit.moment)["etag"]
            if if_match is not None and if_match.strip() not in ("*", current):
                raise ApiError(412, "conditionNotMet", location="If-Match", location_type="header")
            description, private, shared = _patch_fields(body)
            organizer = hit.item.is_organizer(calendar)
            if not organizer and (description is not None or shared):
                raise ApiError(403, "forbiddenForNonOrganizer")
            if organizer and (description is not None or shared):
                self._write_everywhere(hit, Write(description, Props(private, shared)))
                self._mail_guests(hit, send_updates)
            else:
                self._write(hit, Write(None, Props(private, {})))
            return render(hit.item, calendar, hit.copy, hit.moment)

    def _mail_guests(self, hit: Hit, send_updates: str | None) -> None:
        if send_updates not in ("all", "externalOnly"):
            return
        guests = [attendee.email for attendee in hit.item.attendees]
        if send_updates == "externalOnly":
            guests = [guest for guest in guests if self.address(guest) is None]
        self.outbox.meeting_update(
            organizer=hit.item.organizer,
            recipients=guests,
            ical_uid=hit.item.ical_uid,
            occurrence=hit.moment,
            subject=hit.item.title,
            at=self._clock.now(),
        )

    # --------------------------------------------------------------- world hooks

    def _open_calendar(self, address: str) -> None:
        self._calendars[address] = Calendar(address, created=self._clock.now())

    def _calendar(self, address: str) -> Calendar:
        return self._calendars[address]

    def _new_item(self, draft: Draft) -> Item:
        # Google keeps no HTML flag: an HTML description is a description holding HTML.
        event_id = f"ev{self._next():010d}"
        uid = event_id + "@google.com" if draft.ical_uid is None else draft.ical_uid
        if uid in self._items:
            raise ValueError(f"iCalUID {uid!r} already exists")
        fields = draft.item_fields(uid, draft.description)
        return Item(**fields, id=event_id, created=self._clock.now())

    def _new_copy(self, item: Item, calendar: str, source: Copy | None) -> Copy:
        copy = Copy(main=self._new_state(calendar, item.description))
        if source is not None:
            copy.main.shared = dict(source.main.shared)
        return copy

    def _new_state(self, calendar: str, description: str | None) -> CopyState:
        return CopyState(etag=self._etag(), updated=self._clock.now(), description=description)

    def _new_exception(self, calendar: str, origin: CopyState | None) -> CopyState:
        state = super()._new_exception(calendar, origin)
        if origin is not None:
            state.shared = dict(origin.shared)
        return state

    def _retag(self, calendar: str, state: CopyState) -> None:
        state.etag = self._etag()
        state.updated = self._clock.now()

    def _master_id(self, item: Item, copy: Copy) -> str:
        return item.id

    def _occurrence_id(self, item: Item, copy: Copy, moment: datetime) -> str:
        return instance_id(item, moment)

    def _split_occurrence_id(self, event_id: str) -> tuple[str, datetime] | None:
        return parse_instance_id(event_id)

    def _changed(self, hit: Hit, *, created: bool = False, derived: bool = False) -> None:
        event_id = self.event_id(hit)
        if created:
            self._calendars[hit.calendar].tombstones.pop(event_id, None)
        self._log(hit.calendar, event_id)

    def _copy_removed(self, item: Item, calendar: str, copy: Copy) -> None:
        """Leave a tombstone for the copy and each of its exceptions."""
        cal = self._calendars[calendar]
        organizer = item.is_organizer(calendar)
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

    def _apply(self, state: CopyState, extra: Props) -> None:
        state.private.update(extra.private)
        state.shared.update(extra.shared)

    def _for_others(self, extra: Props) -> Props:
        return Props({}, extra.shared)

    def _no_extra(self) -> Props:
        return _NONE

    def _follows_master(self, occurrence: Hit, state: CopyState, write: Write[Props]) -> bool:
        assert occurrence.moment is not None
        props = write.extra.private or write.extra.shared
        shows_master = state.description is None or bool(props)
        return shows_master and not occurrence.item.slot(occurrence.moment).cancelled

    def _series_edited(self, item: Item) -> None:
        item.sequence += 1

    def _settled(self) -> None:
        """Tell the listener, once per calendar, what changed."""
        touched, self._touched = self._touched, set()
        listener = self.listener
        if listener is not None:
            for calendar in sorted(touched):
                listener(calendar)

    # ---------------------------------------------------------------- internals

    def _etag(self) -> str:
        return f'"{_ETAG_BASE + self._next()}"'

    def _log(self, calendar: str, event_id: str) -> None:
        cal = self._calendars[calendar]
        cal.record(event_id)
        cal.updated = self._clock.now()
        self._touched.add(calendar)


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
