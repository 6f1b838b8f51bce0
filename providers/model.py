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
import re
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


#: Lone surrogates (Exchange can cut a subject mid-emoji; JSON may carry a bare
#: ``\\ud83d``) cannot be encoded as UTF-8, and NUL cannot be stored in a
#: PostgreSQL text column: either would fail the whole sync's transaction.
_HEADER_SAFE = re.compile(r"[\x20-\x7e]*")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

#: Sizes beyond any real event: a provider that returns more is returning
#: something broken, and holding it would cost every later sync of the calendar.
#: Ids and addresses are bounded by the columns that index them; a description
#: of a few MiB (pasted documents, inline images) is still a description.
MAX_ID_CHARS = 1024
MAX_ADDRESS_CHARS = 320
MAX_TITLE_CHARS = 10_000
MAX_DESCRIPTION_CHARS = 4 * 1024 * 1024
MAX_ATTENDEES = 2_000


def storable(text: str) -> str:
    """``text`` with what no database can store replaced by U+FFFD."""
    if text.isascii() and "\x00" not in text:
        return text
    return _UNSTORABLE.sub("\ufffd", text)


def _bounded(value: str, limit: int, what: str) -> str:
    if len(value) > limit:
        raise ValueError(f"{what} of {len(value)} characters (more than {limit})")
    return storable(value)


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "email", _bounded(self.email, MAX_ADDRESS_CHARS, "an address"))
        object.__setattr__(self, "name", _bounded(self.name, MAX_TITLE_CHARS, "a name"))


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
        """Refuse what cannot be stored or is absurdly large, clean what can be (``ValueError``).

        Every adapter builds Events here, so this is the one place where a
        provider's text becomes storable and its sizes are bounded.
        """
        object.__setattr__(self, "start", utc(self.start))
        object.__setattr__(self, "end", utc(self.end))
        if self.original_start is not None:
            object.__setattr__(self, "original_start", utc(self.original_start))
        for name in ("id", "calendar_id", "ical_uid", "series_id", "etag", "tag"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _bounded(value, MAX_ID_CHARS, f"{name}"))
        if not _HEADER_SAFE.fullmatch(self.etag):
            # it goes back verbatim in If-Match: what no header can carry is no etag
            raise ValueError(f"an etag that is not printable ASCII: {self.etag[:40]!r}")
        object.__setattr__(
            self, "organizer", _bounded(self.organizer, MAX_ADDRESS_CHARS, "organizer")
        )
        object.__setattr__(self, "title", _bounded(self.title, MAX_TITLE_CHARS, "a title"))
        # The description is never stored, only rewritten around the block: it
        # keeps every character a person put there, storable or not.
        if len(self.description) > MAX_DESCRIPTION_CHARS:
            size = len(self.description)
            raise ValueError(
                f"a description of {size} characters (more than {MAX_DESCRIPTION_CHARS})"
            )
        if len(self.attendees) > MAX_ATTENDEES:
            raise ValueError(f"{len(self.attendees)} attendees (more than {MAX_ATTENDEES})")

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
    unreadable: Sequence[Unreadable] = ()


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An event the provider returned that syncd cannot read, and why.

    It is skipped, not fatal: one broken event must never stop a calendar.
    ``event_id`` is None when even the id could not be read. A full sync
    keeps an unreadable event's mirror row, as if it had been seen: the
    event exists, syncd just cannot read this version of it.
    """

    event_id: str | None
    reason: str
