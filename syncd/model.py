"""Provider-neutral calendar data.

Every provider adapter translates its own wire format into these types, and
everything above the providers (detection, agenda, engine) sees only these.
They are frozen so that a value read from a provider can be shared freely and
compared for equality in tests.

Terms used across the project:

* **event id** – the provider's id of one event in one calendar (one person's
  copy). Google and Graph give each attendee's copy its own id.
* **series id** – the event id of the recurring master an occurrence belongs to
  (Google ``recurringEventId``, Graph ``seriesMasterId``); ``None`` for an
  event that is not part of a series.
* **occurrence key** – iCalUID + original start. It names one occurrence in
  every calendar that holds a copy, and survives moves (the original start of a
  moved occurrence never changes) and re-syncs. Agendas hang off this key.
* **etag** – opaque version of one copy; every write is conditional on it.
* **cursor** – opaque provider state for incremental sync; ``None`` means
  "full sync of the window".
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

#: Stands in for the original start of an event that is not part of a series.
SINGLE_EVENT = datetime(1970, 1, 1, tzinfo=UTC)


class EventType(enum.StrEnum):
    """What the calendar says an event is; only ``DEFAULT`` can be a 1:1."""

    DEFAULT = "default"
    OUT_OF_OFFICE = "outOfOffice"
    FOCUS_TIME = "focusTime"
    WORKING_LOCATION = "workingLocation"
    OTHER = "other"


class Response(enum.StrEnum):
    NEEDS_ACTION = "needsAction"
    ACCEPTED = "accepted"
    TENTATIVE = "tentative"
    DECLINED = "declined"


@dataclass(frozen=True, slots=True)
class Attendee:
    """One invitee (or the organizer) as the provider lists them.

    ``is_resource`` covers rooms and equipment; ``is_group`` covers
    distribution lists and groups that the provider did not expand.
    """

    email: str
    name: str = ""
    is_resource: bool = False
    is_group: bool = False
    is_organizer: bool = False
    response: Response = Response.NEEDS_ACTION
    optional: bool = False


def utc(moment: datetime) -> datetime:
    """Normalise an aware datetime to UTC; naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()} (every time must carry a zone)")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True, order=True)
class OccurrenceKey:
    """Identity of one occurrence across calendars, moves and re-syncs."""

    ical_uid: str
    original_start: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "original_start", utc(self.original_start))

    def __str__(self) -> str:
        return f"{self.ical_uid}@{self.original_start:%Y%m%dT%H%M%SZ}"


@dataclass(frozen=True, slots=True)
class Window:
    """The span of time a sync looks at: [start, end)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start))
        object.__setattr__(self, "end", utc(self.end))
        if self.end <= self.start:
            raise ValueError("window end must be after its start")

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return start < self.end and end > self.start


@dataclass(frozen=True, slots=True)
class Event:
    """One copy of one event (or one occurrence of a series) in one calendar.

    ``recurring`` is true only for a series master: it stands for all its
    occurrences and is never written to; the engine expands it through
    ``Provider.instances``. An occurrence has ``series_id`` and
    ``original_start`` set. ``tag`` is the hidden property where syncd keeps the
    meeting token it wrote (Google extendedProperties.private, Graph
    singleValueExtendedProperties, CalDAV X- property).
    """

    id: str
    calendar_id: str
    ical_uid: str
    title: str
    start: datetime
    end: datetime
    organizer: str
    attendees: tuple[Attendee, ...] = ()
    description: str = ""
    description_is_html: bool = False
    all_day: bool = False
    cancelled: bool = False
    event_type: EventType = EventType.DEFAULT
    recurring: bool = False
    series_id: str | None = None
    original_start: datetime | None = None
    etag: str = ""
    tag: str | None = None
    is_organizer_copy: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start))
        object.__setattr__(self, "end", utc(self.end))
        if self.original_start is not None:
            object.__setattr__(self, "original_start", utc(self.original_start))

    @property
    def key(self) -> OccurrenceKey:
        """Occurrences by original start; a single event by its iCalUID alone.

        A single event has no original start, and its start changes when it is
        rescheduled, so it takes the fixed ``SINGLE_EVENT`` in its place: a moved
        ad-hoc 1:1 keeps its agenda just as a moved occurrence does.
        """
        return OccurrenceKey(self.ical_uid, self.original_start or SINGLE_EVENT)


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One page of changes since a cursor.

    ``removed`` lists ids of events deleted from the calendar (not merely
    cancelled occurrences, which come back as events with ``cancelled``).
    ``cursor`` is set on the last page only; it is what the next incremental
    sync starts from.
    """

    events: Sequence[Event] = ()
    removed: Sequence[str] = ()
    cursor: str | None = None
