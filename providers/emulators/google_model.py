"""The emulated Google calendars as plain data, and the recurrence arithmetic on them.

Kept apart from the store (locking, change logs) and from rendering (JSON), so
that each of those reads as one concern. The shapes follow what Google keeps:

* An ``Item`` is one event or series as its organizer defined it. Every
  calendar that holds it has a ``Copy`` under the *same* event id (Google
  reuses the id across attendees' copies inside one domain), with its own
  etag, ``updated``, private extended properties and, because a person may
  type into their own copy, its own description.
* An occurrence of a series is named by its original start. It only has state
  of its own once it became an exception (moved, cancelled, or written); the
  others are generated from the master on demand.
* A ``Shift`` is the organizer moving or cancelling one occurrence: it is the
  same in every copy.
* A ``Tombstone`` is what a calendar keeps of a copy that was deleted from it,
  so that incremental sync, ``showDeleted`` and ``get`` can report it as
  ``status: cancelled``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from providers.memory import Recurrence
from syncd.model import Attendee, EventType

__all__ = [
    "STAMP",
    "Calendar",
    "Copy",
    "CopyState",
    "Item",
    "Shift",
    "Tombstone",
    "instance_id",
    "is_occurrence",
    "originals",
    "overlaps",
    "parse_instance_id",
]

STAMP = "%Y%m%dT%H%M%SZ"
DAY_STAMP = "%Y%m%d"


@dataclass
class CopyState:
    """One calendar's version of an event, or of one occurrence (an exception).

    For an occurrence, ``description`` ``None`` means "shows the master's", and
    ``private``/``shared`` hold only the keys set on the occurrence itself; the
    rendered occurrence overlays them on the master's.
    """

    etag: str
    updated: datetime
    description: str | None
    private: dict[str, str] = field(default_factory=dict)
    shared: dict[str, str] = field(default_factory=dict)


@dataclass
class Copy:
    main: CopyState
    occurrences: dict[datetime, CopyState] = field(default_factory=dict)


@dataclass
class Shift:
    """The organizer moved or cancelled one occurrence; the same in every copy."""

    start: datetime
    end: datetime
    cancelled: bool = False


@dataclass
class Item:
    id: str
    ical_uid: str
    organizer: str
    attendees: tuple[Attendee, ...]
    title: str
    start: datetime
    end: datetime
    description: str
    all_day: bool
    event_type: EventType
    recurrence: Recurrence | None
    created: datetime
    sequence: int = 0
    shifts: dict[datetime, Shift] = field(default_factory=dict)
    copies: dict[str, Copy] = field(default_factory=dict)

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def slot(self, moment: datetime) -> Shift:
        """Where the occurrence originally at ``moment`` is now."""
        return self.shifts.get(moment) or Shift(moment, moment + self.duration)


@dataclass
class Tombstone:
    """A deleted copy: ``resource`` is its last details, shown only where Google shows them."""

    etag: str
    updated: datetime
    start: datetime
    end: datetime
    resource: dict[str, Any]
    organizer_copy: bool


@dataclass
class Calendar:
    """One person's primary calendar and its change log.

    The log holds ``(sequence, event id)`` for every change of a copy or an
    occurrence; a sync token names a sequence number and an epoch, and
    ``expire`` bumps the epoch so every older token is refused.
    """

    address: str
    created: datetime
    epoch: int = 0
    seq: int = 0
    log: list[tuple[int, str]] = field(default_factory=list)
    tombstones: dict[str, Tombstone] = field(default_factory=dict)
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))


def instance_id(item: Item, moment: datetime) -> str:
    """``{id}_{YYYYMMDDTHHMMSSZ}``, or ``{id}_{YYYYMMDD}`` for all-day series, as Google does."""
    return f"{item.id}_{moment:{DAY_STAMP if item.all_day else STAMP}}"


def parse_instance_id(event_id: str) -> tuple[str, datetime] | None:
    """Split an instance id into master id and original start; None if it is not one."""
    master, sep, stamp = event_id.rpartition("_")
    if not sep or not master:
        return None
    for pattern in (STAMP, DAY_STAMP):
        try:
            return master, datetime.strptime(stamp, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def is_occurrence(item: Item, moment: datetime) -> bool:
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
    item: Item, low: datetime | None, high: datetime | None, limit: int
) -> Iterator[datetime]:
    """Original starts whose original slot ends after ``low`` and starts before ``high``.

    ``limit`` bounds an endless series listed without ``timeMax``; Google pages
    through such a series forever, a finite emulator has to stop somewhere.
    """
    rule = item.recurrence
    if rule is None:
        return
    duration = item.duration
    index = 0 if low is None else max(0, (low - duration - item.start) // rule.step)
    produced = 0
    while produced < limit:
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


def overlaps(
    start: datetime,
    end: datetime,
    low: datetime | None,
    high: datetime | None,
    *,
    inclusive_low: bool = False,
) -> bool:
    """Google's window test: ``timeMin`` bounds the end, ``timeMax`` (exclusive) the start.

    events.list documents ``timeMin`` as exclusive, events.instances as
    inclusive; ``inclusive_low`` picks which.
    """
    if high is not None and start >= high:
        return False
    if low is None:
        return True
    return end >= low if inclusive_low else end > low
