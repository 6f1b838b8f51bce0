"""Every change to the shared calendar model, once, with hooks for what each system does.

The memory provider and the Google and Graph emulators change their
calendars the same way, because the real services do: an organizer's edit
reaches every copy, an attendee's stays in theirs, a move or cancellation
turns an occurrence into an exception in every copy, a new invitee's copy
reads as the organizer's does. ``CalendarWorld`` does all of that on the
data of ``calendar_model``; each system subclasses it and fills in hooks:

* ids: ``_new_item``, ``_new_copy``, ``_master_id``, ``_occurrence_id``,
  ``_split_occurrence_id``;
* version tags: ``_new_state``, ``_retag`` (every change of a copy, or of one
  occurrence in it, gets a fresh one);
* what a write carries besides the description (the type parameter
  ``ExtraT``): ``_apply``, ``_for_others``, ``_no_extra``, and
  ``_follows_master``, which says when a write of the master also changes an
  exception that shows it;
* change logs and listeners: ``_changed`` for every change, ``derived`` when
  an occurrence changed only along with its master; ``_copy_removed``;
  ``_settled`` when the outermost change ends, with the lock still held;
* which errors name an unknown calendar or event.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Generic, Protocol

from providers.calendar_model import (
    Calendar,
    CopyT,
    Draft,
    ExtraT,
    Hit,
    ItemT,
    Recurrence,
    Shift,
    StateT,
    Write,
    attendee_list,
    is_occurrence,
)
from providers.model import Attendee, EventType, utc

__all__ = ["CalendarWorld", "WorldBuilder"]


class WorldBuilder(Protocol):
    """Whatever a test, the demo or a benchmark seeds people's calendars through.

    ``CalendarWorld`` (so the memory provider) and both emulators have it, so
    one seeding routine serves every calendar system; the signature is the one
    ``CalendarWorld.create_event`` implements.
    """

    def create_event(
        self,
        organizer: str,
        attendees: Sequence[str | Attendee],
        title: str,
        start: datetime,
        end: datetime,
        *,
        description: str = "",
        html: bool = False,
        all_day: bool = False,
        event_type: EventType = EventType.DEFAULT,
        recurrence: Recurrence | None = None,
        ical_uid: str | None = None,
    ) -> str: ...


class CalendarWorld(ABC, Generic[ItemT, CopyT, StateT, ExtraT]):
    """Items, copies and every change to them, behind one re-entrant lock.

    Type parameters: the system's item, copy and state classes, and ``ExtraT``,
    what a write carries besides the description (a tag, extended
    properties). World-building methods (``create_event``, ``move_occurrence``,
    ...) are the ones tests script people's edits with.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._counter = 0
        self._folded: dict[str, str] = {}
        self._items: dict[str, ItemT] = {}
        self._ids: dict[str, str] = {}  # master or single event id -> iCalUID
        self._depth = 0

    # ------------------------------------------------------------ world-building

    def add_calendar(self, address: str) -> None:
        """Hold ``address``'s calendar, with copies of what it was already invited to."""
        with self._mutation():
            if address.casefold() in self._folded:
                return
            self._open_calendar(address)
            self._folded[address.casefold()] = address
            for item in self._items.values():
                if address in self._holders(item):
                    self._add_copy(item, address)

    def address(self, calendar: str) -> str | None:
        """The held calendar's address as it was added, whatever the case; None if not held."""
        return self._folded.get(calendar.casefold())

    def create_event(
        self,
        organizer: str,
        attendees: Sequence[str | Attendee],
        title: str,
        start: datetime,
        end: datetime,
        *,
        description: str = "",
        html: bool = False,
        all_day: bool = False,
        event_type: EventType = EventType.DEFAULT,
        recurrence: Recurrence | None = None,
        ical_uid: str | None = None,
    ) -> str:
        """Create an event (a series if ``recurrence``) as the organizer; returns its iCalUID."""
        start, end = utc(start), utc(end)
        if end <= start:
            raise ValueError("an event must end after it starts")
        with self._mutation():
            draft = Draft(
                organizer=organizer,
                attendees=attendee_list(organizer, attendees),
                title=title,
                start=start,
                end=end,
                description=description,
                html=html,
                all_day=all_day,
                event_type=event_type,
                recurrence=recurrence,
                ical_uid=ical_uid,
            )
            item = self._new_item(draft)
            self._items[item.ical_uid] = item
            for calendar in self._holders(item):
                self._add_copy(item, calendar)
            return item.ical_uid

    def copy_id(self, calendar: str, ical_uid: str, original_start: datetime | None = None) -> str:
        """The id of ``calendar``'s copy of an event, or of one occurrence of it."""
        with self.lock:
            item = self._item(ical_uid)
            copy = item.copies.get(self._address(calendar))
            if copy is None:
                raise KeyError(f"{calendar} holds no copy of {ical_uid}")
            if original_start is None:
                return self._master_id(item, copy)
            moment = utc(original_start)
            self._require_occurrence(item, moment)
            return self._occurrence_id(item, copy, moment)

    def edit_description(self, calendar: str, event_id: str, description: str) -> None:
        """A person typing into their client: the organizer's edit reaches every copy."""
        with self._mutation():
            hit = self._require(calendar, event_id)
            text = self._typed(hit.item, description)
            write = Write(text, self._no_extra())
            if hit.item.is_organizer(hit.calendar):
                self._write_everywhere(hit, write)
            else:
                self._write(hit, write)

    def move_occurrence(
        self, ical_uid: str, original_start: datetime, new_start: datetime, new_end: datetime
    ) -> None:
        """The organizer reschedules one occurrence (or a single event at ``original_start``)."""
        moment, new_start, new_end = utc(original_start), utc(new_start), utc(new_end)
        if new_end <= new_start:
            raise ValueError("an event must end after it starts")
        with self._mutation():
            item = self._item(ical_uid)
            if item.recurrence is None:
                if moment != item.start:
                    raise KeyError(f"{ical_uid} does not start at {moment.isoformat()}")
                item.start, item.end = new_start, new_end
                self._series_edited(item)
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
            del self._items[item.ical_uid]

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
                item.attendees = attendee_list(item.organizer, attendees)
            self._series_edited(item)
            holders = self._holders(item)
            for calendar in list(item.copies):
                if calendar not in holders:
                    self._remove_copy(item, calendar)
            self._touch_all(item)
            for calendar in holders:
                if calendar not in item.copies:
                    self._add_copy(item, calendar)

    def expire(self, calendar: str) -> None:
        """Invalidate every cursor issued so far for ``calendar``."""
        with self.lock:
            self._calendar(self._address(calendar)).epoch += 1

    # ------------------------------------------------------------------ lookups

    def find(self, calendar: str, event_id: str) -> Hit[ItemT, CopyT] | None:
        """Resolve a master, single or occurrence id in one held calendar; None if gone."""
        master = self._master_hit(calendar, event_id)
        if master is not None:
            return master
        parsed = self._split_occurrence_id(event_id)
        if parsed is None:
            return None
        master = self._master_hit(calendar, parsed[0])
        moment = parsed[1]
        if master is None or not is_occurrence(master.item, moment):
            return None
        if self._occurrence_id(master.item, master.copy, moment) != event_id:
            return None  # another spelling of an id is not that id
        hit = replace(master, moment=moment)
        return hit if self._visible(hit) else None

    def event_id(self, hit: Hit[ItemT, CopyT]) -> str:
        if hit.moment is None:
            return self._master_id(hit.item, hit.copy)
        return self._occurrence_id(hit.item, hit.copy, hit.moment)

    # ----------------------------------------------------------------- internals

    @contextmanager
    def _mutation(self) -> Iterator[None]:
        """Hold the lock; when the outermost change ends, let the system announce it."""
        with self.lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._settled()

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def _address(self, calendar: str) -> str:
        address = self._folded.get(calendar.casefold())
        if address is None:
            raise self._unknown_calendar(calendar)
        return address

    def _require(self, calendar: str, event_id: str) -> Hit[ItemT, CopyT]:
        hit = self.find(self._address(calendar), event_id)
        if hit is None:
            raise self._unknown_event(calendar, event_id)
        return hit

    def _item(self, ical_uid: str) -> ItemT:
        try:
            return self._items[ical_uid]
        except KeyError:
            raise KeyError(f"no event with iCalUID {ical_uid!r}") from None

    def _master_hit(self, calendar: str, event_id: str) -> Hit[ItemT, CopyT] | None:
        uid = self._ids.get(event_id)
        item = None if uid is None else self._items.get(uid)
        if item is None:
            return None
        copy: CopyT | None = item.copies.get(calendar)
        if copy is None or self._master_id(item, copy) != event_id:
            return None
        return Hit(item, calendar, copy, None)

    def _require_occurrence(self, item: ItemT, moment: datetime) -> None:
        if not is_occurrence(item, moment):
            raise KeyError(f"{item.ical_uid} has no occurrence at {moment.isoformat()}")

    def _holders(self, item: ItemT) -> list[str]:
        """Calendars that get a copy: the organizer's and invited people's that we hold."""
        wanted = [item.organizer] + [
            a.email for a in item.attendees if not (a.is_resource or a.is_group)
        ]
        holders: list[str] = []
        for email in wanted:
            address = self._folded.get(email.casefold())
            if address is not None and address not in holders:
                holders.append(address)
        return holders

    def _organizer_copy(self, item: ItemT) -> CopyT | None:
        copies: dict[str, CopyT] = item.copies
        return next((c for cal, c in copies.items() if item.is_organizer(cal)), None)

    def _add_copy(self, item: ItemT, calendar: str) -> None:
        """A new copy reads as the organizer's invitation currently does."""
        source = self._organizer_copy(item)
        copy = self._new_copy(item, calendar, source)
        item.copies[calendar] = copy
        self._ids[self._master_id(item, copy)] = item.ical_uid
        self._copy_added(item, calendar)
        master = Hit(item, calendar, copy, None)
        self._changed(master, created=True)
        exceptions = set(item.shifts) | (set(source.occurrences) if source else set())
        for moment in sorted(exceptions):
            origin = source.occurrences.get(moment) if source else None
            copy.occurrences[moment] = self._new_exception(calendar, origin)
            self._changed(replace(master, moment=moment), created=True, derived=True)

    def _remove_copy(self, item: ItemT, calendar: str) -> None:
        copy: CopyT = item.copies.pop(calendar)
        master = self._master_id(item, copy)
        if all(self._master_id(item, other) != master for other in item.copies.values()):
            del self._ids[master]
        self._copy_removed(item, calendar, copy)

    def _touch_all(self, item: ItemT) -> None:
        """A series-level edit changes every copy and every exception in it."""
        copies: dict[str, CopyT] = item.copies
        for calendar, copy in copies.items():
            master = Hit(item, calendar, copy, None)
            self._retag(calendar, copy.main)
            self._changed(master)
            for moment, state in copy.occurrences.items():
                self._retag(calendar, state)
                self._changed(replace(master, moment=moment), derived=True)

    def _touch_occurrence(self, item: ItemT, moment: datetime) -> None:
        """The organizer moved or cancelled one occurrence: an exception in every copy."""
        copies: dict[str, CopyT] = item.copies
        for calendar, copy in copies.items():
            state = copy.occurrences.get(moment)
            if state is None:
                copy.occurrences[moment] = self._new_state(calendar, None)
            else:
                self._retag(calendar, state)
            self._changed(Hit(item, calendar, copy, moment))

    def _write_everywhere(self, hit: Hit[ItemT, CopyT], write: Write[ExtraT]) -> None:
        """The organizer's change of what every copy shows; ``extra`` in full only in theirs."""
        item = hit.item
        if hit.moment is None and write.description is not None:
            item.description = write.description
        others = replace(write, extra=self._for_others(write.extra))
        for calendar in list(item.copies):
            mine = write if calendar == hit.calendar else others
            self._write(Hit(item, calendar, item.copies[calendar], hit.moment), mine)

    def _write(self, hit: Hit[ItemT, CopyT], write: Write[ExtraT]) -> None:
        """Change one copy (or one occurrence of it, which becomes an exception)."""
        calendar, copy, moment = hit.calendar, hit.copy, hit.moment
        state: StateT
        if moment is None:
            state = copy.main
        else:
            found = copy.occurrences.get(moment)
            if found is None:
                found = self._new_state(calendar, None)
                copy.occurrences[moment] = found
            state = found
        if write.description is not None:
            state.description = write.description
        self._apply(state, write.extra)
        self._retag(calendar, state)
        self._changed(hit)
        if moment is None:
            exceptions: dict[datetime, StateT] = copy.occurrences
            for other, exception in exceptions.items():
                occurrence = replace(hit, moment=other)
                if self._follows_master(occurrence, exception, write):
                    self._retag(calendar, exception)
                    self._changed(occurrence, derived=True)

    # ---------------------------------------------------------------------- hooks

    @abstractmethod
    def _open_calendar(self, address: str) -> None:
        """Create the system's record (change log, ...) for a newly held calendar."""

    @abstractmethod
    def _calendar(self, address: str) -> Calendar:
        """The change log of a held calendar (``address`` as it was added)."""

    @abstractmethod
    def _new_item(self, draft: Draft) -> ItemT:
        """A new item with the system's ids; ValueError if its iCalUID is taken."""

    @abstractmethod
    def _new_copy(self, item: ItemT, calendar: str, source: CopyT | None) -> CopyT:
        """A copy for ``calendar`` (``source``: the organizer's, if held), its main state fresh."""

    @abstractmethod
    def _new_state(self, calendar: str, description: str | None) -> StateT:
        """A state with a fresh version tag."""

    def _new_exception(self, calendar: str, origin: StateT | None) -> StateT:
        """A new copy's exception, as the organizer's copy has it (``origin``) if it does."""
        return self._new_state(calendar, origin.description if origin is not None else None)

    @abstractmethod
    def _retag(self, calendar: str, state: StateT) -> None:
        """Give ``state`` a fresh version tag: it changed."""

    @abstractmethod
    def _master_id(self, item: ItemT, copy: CopyT) -> str:
        """The id of the copy's master or single event."""

    @abstractmethod
    def _occurrence_id(self, item: ItemT, copy: CopyT, moment: datetime) -> str:
        """The id of the copy's occurrence originally at ``moment``; stable across moves."""

    @abstractmethod
    def _split_occurrence_id(self, event_id: str) -> tuple[str, datetime] | None:
        """The master id and original start an occurrence id names; None for any other id."""

    @abstractmethod
    def _changed(
        self, hit: Hit[ItemT, CopyT], *, created: bool = False, derived: bool = False
    ) -> None:
        """One copy's master or occurrence changed (``created``: it is new in that calendar).

        ``derived``: an occurrence changed only along with its master, which
        a system that reports series as a whole need not log separately.
        """

    def _copy_added(self, item: ItemT, calendar: str) -> None:
        """``calendar`` now holds a copy of ``item`` (before any change is announced)."""

    @abstractmethod
    def _copy_removed(self, item: ItemT, calendar: str, copy: CopyT) -> None:
        """``copy`` was taken out of ``calendar``: log it, keep what the system keeps of it."""

    @abstractmethod
    def _apply(self, state: StateT, extra: ExtraT) -> None:
        """Write what a write carries besides the description into ``state``."""

    @abstractmethod
    def _for_others(self, extra: ExtraT) -> ExtraT:
        """The part of an organizer's write that reaches attendees' copies too."""

    @abstractmethod
    def _no_extra(self) -> ExtraT:
        """What a person typing a description writes besides it: nothing."""

    @abstractmethod
    def _follows_master(
        self, occurrence: Hit[ItemT, CopyT], state: StateT, write: Write[ExtraT]
    ) -> bool:
        """Whether a write of the master also changes this exception (it shows the master's)."""

    def _series_edited(self, item: ItemT) -> None:
        """The organizer changed the event itself (time, title, invitees)."""

    def _visible(self, hit: Hit[ItemT, CopyT]) -> bool:
        """Whether an occurrence can be looked up at all in that calendar."""
        return True

    def _typed(self, item: ItemT, description: str) -> str:
        """A description as the system stores what a person typed."""
        return description

    def _settled(self) -> None:
        """The outermost change finished (the lock is still held): announce it."""

    def _unknown_calendar(self, calendar: str) -> Exception:
        return KeyError(f"no calendar {calendar!r}")

    def _unknown_event(self, calendar: str, event_id: str) -> Exception:
        return KeyError(f"no event {event_id!r} in {calendar}")
