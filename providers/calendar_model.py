"""The organizer-side calendar model the memory provider and both emulators share: data.

Google Calendar and Exchange agree on what a calendar holds; they differ in
how they name, version and announce it. This module is what they agree on,
as plain data and arithmetic; ``calendar_world`` holds the changes to it.

* An ``Item`` is one event or series as its organizer defined it. Every held
  calendar that belongs to the organizer or an invitee has a ``Copy`` of it:
  its own main ``State`` (version tag, and the description, which a person
  may type into their own copy) and its exceptions.
* A series is one master plus occurrences generated on demand from its
  ``Recurrence``. An occurrence is named by its original start, which never
  changes. A move or cancellation by the organizer is a ``Shift``, the same in
  every copy. An occurrence with state of its own in a copy is an exception;
  its description ``None`` means it shows the master's.
* A ``Hit`` names one event in one calendar: item, copy, and which
  occurrence (None: the master or single event).

Each system subclasses ``State``, ``Copy`` and ``Item`` with its own fields
(etags and times, extended properties, Exchange's GlobalObjectId, ...).

It lives in ``providers`` rather than ``providers.emulators`` because the
memory provider (a provider ``syncd sync-once`` can run against a file) uses
it, and a provider must not depend on test servers; the emulators depend on
it instead, as they already depended on ``Recurrence``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from providers.model import Attendee, EventType, Response, utc

__all__ = [
    "DAY_STAMP",
    "STAMP",
    "Calendar",
    "Clock",
    "Copy",
    "CopyT",
    "Definition",
    "Draft",
    "ExtraT",
    "Hit",
    "Item",
    "ItemT",
    "Recurrence",
    "Shift",
    "State",
    "StateT",
    "Write",
    "attendee_list",
    "is_occurrence",
    "originals",
    "parse_stamped_id",
    "stamped_id",
]

STAMP = "%Y%m%dT%H%M%SZ"
DAY_STAMP = "%Y%m%d"


@dataclass(frozen=True)
class Recurrence:
    """A series every ``interval_days`` days, bounded by ``count`` and/or ``until``.

    Days are counted in UTC, so there is no daylight-saving drift to model;
    that is a concern of the real providers' recurrence rules, not of the
    engine, which only ever sees expanded occurrences. ``until`` is inclusive
    like RRULE's UNTIL.
    """

    interval_days: int = 7
    count: int | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.interval_days < 1:
            raise ValueError("interval_days must be at least 1")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1")
        if self.until is not None:
            object.__setattr__(self, "until", utc(self.until))

    @property
    def step(self) -> timedelta:
        return timedelta(days=self.interval_days)


@dataclass
class Shift:
    """The organizer moved or cancelled one occurrence; the same in every copy."""

    start: datetime
    end: datetime
    cancelled: bool = False


@dataclass(kw_only=True)
class State:
    """One copy's version of an event, or of one occurrence of it (an exception).

    On an occurrence, ``description`` ``None`` means "shows the master's".
    Each system adds its version tag and hidden properties.
    """

    description: str | None


StateT = TypeVar("StateT", bound=State)


@dataclass(kw_only=True)
class Copy(Generic[StateT]):
    """One calendar's copy: the master's (or single event's) state and its exceptions."""

    main: StateT
    occurrences: dict[datetime, StateT] = field(default_factory=dict)


CopyT = TypeVar("CopyT", bound=Copy[Any])


@dataclass(kw_only=True)
class Definition:
    """What the organizer defines of an event, as a draft and as the item made from it."""

    organizer: str
    attendees: tuple[Attendee, ...]
    title: str
    start: datetime
    end: datetime
    description: str
    all_day: bool
    event_type: EventType
    recurrence: Recurrence | None


@dataclass(kw_only=True)
class Item(Definition, Generic[CopyT]):
    """One event or series as its organizer defined it, with every held calendar's copy."""

    ical_uid: str
    shifts: dict[datetime, Shift] = field(default_factory=dict)
    copies: dict[str, CopyT] = field(default_factory=dict)

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def slot(self, moment: datetime) -> Shift:
        """Where the occurrence originally at ``moment`` is now."""
        return self.shifts.get(moment) or Shift(moment, moment + self.duration)

    def is_organizer(self, calendar: str) -> bool:
        return calendar.casefold() == self.organizer.casefold()

    def shows(self, moment: datetime, overlaps: Callable[[datetime, datetime], bool]) -> bool:
        """Where an occurrence is now decides; a cancelled one also counts where it was."""
        slot = self.slot(moment)
        if overlaps(slot.start, slot.end):
            return True
        return slot.cancelled and overlaps(moment, moment + self.duration)


ItemT = TypeVar("ItemT", bound=Item[Any])
ExtraT = TypeVar("ExtraT")


@dataclass(frozen=True)
class Hit(Generic[ItemT, CopyT]):
    """One event in one calendar: an item's copy there, and which occurrence (None: master)."""

    item: ItemT
    calendar: str
    copy: CopyT
    moment: datetime | None


@dataclass(kw_only=True)
class Draft(Definition):
    """An event as its organizer creates it, before the system gives it ids."""

    html: bool
    ical_uid: str | None  # as requested; the system may wrap it or make one up

    def item_fields(self, ical_uid: str, description: str) -> dict[str, Any]:
        """The shared ``Item`` fields, under the iCalUID and description the system keeps."""
        defined = {f.name: getattr(self, f.name) for f in fields(Definition)}
        return defined | {"ical_uid": ical_uid, "description": description}


@dataclass(frozen=True)
class Write(Generic[ExtraT]):
    """One write of a copy: the description (None: left alone) and the system's extras."""

    description: str | None
    extra: ExtraT


@dataclass
class Calendar:
    """One held calendar's change log.

    The log holds ``(sequence, event id)`` for every change of a copy or an
    occurrence; a cursor names a sequence number and an epoch, and bumping
    the epoch refuses every older cursor.
    """

    address: str
    epoch: int = 0
    seq: int = 0
    log: list[tuple[int, str]] = field(default_factory=list)

    def record(self, event_id: str) -> None:
        self.seq += 1
        self.log.append((self.seq, event_id))


class Clock:
    """Modification times that never repeat or go back, so ordering by them is exact."""

    def __init__(self, resolution: timedelta) -> None:
        self._step = resolution
        self._last = datetime(1970, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        moment = datetime.now(UTC)
        moment -= timedelta(microseconds=moment.microsecond) % self._step
        if moment <= self._last:
            moment = self._last + self._step
        self._last = moment
        return moment


# ------------------------------------------------------------------ recurrence


def is_occurrence(item: Item[Any], moment: datetime) -> bool:
    rule = item.recurrence
    if rule is None or moment < item.start:
        return False
    index, rest = divmod(moment - item.start, rule.step)
    if rest:
        return False
    if rule.count is not None and index >= rule.count:
        return False
    return rule.until is None or moment <= rule.until


def originals(
    item: Item[Any], low: datetime | None, high: datetime | None, limit: int | None = None
) -> Iterator[datetime]:
    """Original starts whose original slot ends after ``low`` and starts before ``high``.

    ``limit`` bounds an endless series listed without ``high``; a real service
    pages through such a series forever, a finite fake has to stop somewhere.
    """
    rule = item.recurrence
    if rule is None:
        return
    duration = item.duration
    index = 0 if low is None else max(0, (low - duration - item.start) // rule.step)
    produced = 0
    while limit is None or produced < limit:
        moment = item.start + index * rule.step
        if high is not None and moment >= high:
            return
        if rule.count is not None and index >= rule.count:
            return
        if rule.until is not None and moment > rule.until:
            return
        if low is None or moment + duration > low:
            produced += 1
            yield moment
        index += 1


def stamped_id(master_id: str, moment: datetime, *, day: bool = False) -> str:
    """``{master}_{YYYYMMDDTHHMMSSZ}``, or ``{master}_{YYYYMMDD}`` with ``day``: Google's form."""
    return f"{master_id}_{moment:{DAY_STAMP if day else STAMP}}"


def parse_stamped_id(event_id: str) -> tuple[str, datetime] | None:
    """Split a stamped id into master id and original start; None if it is not one."""
    master, sep, stamp = event_id.rpartition("_")
    if not sep or not master:
        return None
    for pattern in (STAMP, DAY_STAMP):
        try:
            return master, datetime.strptime(stamp, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def attendee_list(organizer: str, people: Sequence[str | Attendee]) -> tuple[Attendee, ...]:
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
