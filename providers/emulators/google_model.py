"""The emulated Google calendars as plain data: the shared calendar model with Google's fields.

Items, copies, shifts and the recurrence arithmetic are
``providers.calendar_model``; this module adds what Google keeps on top:

* An ``Item`` has one event ``id`` that every calendar's ``Copy`` uses (Google
  reuses the id across attendees' copies inside one domain), a ``created``
  time and a ``sequence`` the organizer's edits of the event itself bump.
* A ``CopyState`` has its etag, its ``updated`` time and private and shared
  extended properties, besides the description a person may type into their
  own copy.
* A ``Tombstone`` is what a calendar keeps of a copy that was deleted from it,
  so that incremental sync, ``showDeleted`` and ``get`` can report it as
  ``status: cancelled``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from providers.calendar_model import (
    STAMP,
    Shift,
    is_occurrence,
    originals,
    parse_stamped_id,
    stamped_id,
)
from providers.calendar_model import Calendar as _Log
from providers.calendar_model import Copy as _Copy
from providers.calendar_model import Item as _Item
from providers.calendar_model import State as _State

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


@dataclass(kw_only=True)
class CopyState(_State):
    """One calendar's version of an event, or of one occurrence (an exception).

    For an occurrence, ``description`` ``None`` means "shows the master's", and
    ``private``/``shared`` hold only the keys set on the occurrence itself; the
    rendered occurrence overlays them on the master's.
    """

    etag: str
    updated: datetime
    private: dict[str, str] = field(default_factory=dict)
    shared: dict[str, str] = field(default_factory=dict)


@dataclass(kw_only=True)
class Copy(_Copy[CopyState]):
    """One calendar's copy; its id is the item's."""


@dataclass(kw_only=True)
class Item(_Item[Copy]):
    id: str
    created: datetime
    sequence: int = 0


@dataclass
class Tombstone:
    """A deleted copy: ``resource`` is its last details, shown only where Google shows them."""

    etag: str
    updated: datetime
    start: datetime
    end: datetime
    resource: dict[str, Any]
    organizer_copy: bool


@dataclass(kw_only=True)
class Calendar(_Log):
    """One person's primary calendar: its change log, and what was deleted from it."""

    created: datetime
    tombstones: dict[str, Tombstone] = field(default_factory=dict)
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))


def instance_id(item: Item, moment: datetime) -> str:
    """``{id}_{YYYYMMDDTHHMMSSZ}``, or ``{id}_{YYYYMMDD}`` for all-day series, as Google does."""
    return stamped_id(item.id, moment, day=item.all_day)


parse_instance_id = parse_stamped_id


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
