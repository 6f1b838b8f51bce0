"""iCalendar resources <-> the neutral event model, and the one edit syncd makes to them.

Pure functions over text: no I/O, so every real-world shape of ICS (Google,
Exchange, Apple and Nextcloud exports) can be tested without a server.

A CalDAV resource holds one event: a single VEVENT, or a series master with
RRULE/RDATE/EXDATE and any number of RECURRENCE-ID overrides. Ids follow
that: the resource's name for the single event or master, and
``<name>#<recurrence id>`` for one occurrence. An occurrence's etag is a
digest of its own component (what was read), not the resource's: a write
is refused when *that* occurrence changed since it was read, while an edit
of a sibling occurrence (the same resource) does not stand in its way. The
write itself is still conditional on the resource's etag (If-Match).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import icalendar
import recurring_ical_events
import x_wr_timezone

from providers.model import Attendee, Event, Response, Unreadable, storable
from providers.options import fold_address

__all__ = [
    "TAG_PROPERTY",
    "Resource",
    "event_of",
    "occurrence",
    "occurrence_id",
    "occurrences",
    "overlaps",
    "parse",
    "split_id",
    "stored",
    "with_description",
]

#: Where syncd keeps its meeting token in the organizer's copy.
TAG_PROPERTY = "X-SYNCD-TAG"
_SEPARATOR = "#"
_RESPONSES = {
    "ACCEPTED": Response.ACCEPTED,
    "TENTATIVE": Response.TENTATIVE,
    "DECLINED": Response.DECLINED,
}
_SERIES_ONLY = ("RRULE", "RDATE", "EXDATE", "EXRULE")
#: The longest any expansion looks: an endless daily series costs this many entries, no more.
_MAX_OCCURRENCES = 5000


@dataclass(frozen=True)
class Resource:
    """One parsed CalDAV object: its name in the collection, its etag, and its calendar."""

    name: str
    etag: str
    calendar: icalendar.Calendar

    @property
    def components(self) -> list[Any]:
        return list(self.calendar.walk("VEVENT"))

    def master(self) -> Any | None:
        for component in self.components:
            if "RECURRENCE-ID" not in component:
                return component
        return None

    def override(self, recurrence: str) -> Any | None:
        for component in self.components:
            rid = component.get("RECURRENCE-ID")
            if rid is not None and _stamp(rid.dt) == recurrence:
                return component
        return None


def split_id(event_id: str) -> tuple[str, str | None]:
    """(resource name, recurrence stamp or None)."""
    name, _, recurrence = event_id.partition(_SEPARATOR)
    return name, (recurrence or None)


def occurrence_id(name: str, recurrence: date | datetime) -> str:
    return f"{name}{_SEPARATOR}{_stamp(recurrence)}"


def _stamp(moment: date | datetime) -> str:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            return moment.strftime("%Y%m%dT%H%M%S")  # floating: as written
        return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return moment.strftime("%Y%m%d")


def parse(name: str, etag: str, text: str | bytes) -> Resource:
    """The resource, Google's X-WR-TIMEZONE exports made standard; ValueError if unreadable."""
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except Exception as error:  # icalendar raises ValueError and friends on bad input
        raise ValueError(f"not iCalendar: {error}") from None
    if not isinstance(calendar, icalendar.Calendar):
        raise ValueError("not a VCALENDAR")
    calendar = x_wr_timezone.to_standard(calendar)
    found = list(calendar.walk("VEVENT"))
    if not found:
        raise ValueError("no VEVENT")
    for component in found:
        _check(component)
    return Resource(name, etag, calendar)


def _check(component: Any) -> None:
    """Why a VEVENT cannot be read, as ValueError: checked once, when the resource is parsed."""
    if not str(component.get("UID") or "").strip():
        raise ValueError("a VEVENT without UID")
    if "DTSTART" not in component:
        raise ValueError("a VEVENT without DTSTART")
    for key in ("DTSTART", "DTEND", "RECURRENCE-ID"):
        value = component.get(key)
        if value is None:
            continue
        try:
            moment = value.dt
        except Exception as error:  # icalendar's BrokenCalendarProperty and kin
            raise ValueError(f"{key}: {error}") from None
        zone = getattr(value, "params", {}).get("TZID")
        if zone and isinstance(moment, datetime) and moment.tzinfo is None:
            raise ValueError(f"{key}: unknown time zone {zone!r} (no VTIMEZONE and not IANA)")


def digest(component: Any) -> str:
    """An occurrence's version: what a person would see change, nothing else."""
    return hashlib.sha256(component.to_ical()).hexdigest()[:40]


def _moment(value: date | datetime, zone: tzinfo) -> tuple[datetime, bool]:
    """(aware start, all day); floating times are read in ``zone``, dates at midnight UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=zone), False
        return value, False
    return datetime.combine(value, time(0), tzinfo=UTC), True


def _span(component: Any, zone: tzinfo) -> tuple[datetime, datetime, bool]:
    raw_start = component.get("DTSTART")
    if raw_start is None:
        raise ValueError("a VEVENT without DTSTART")
    start, all_day = _moment(raw_start.dt, zone)
    if "DTEND" in component:
        end, _ = _moment(component["DTEND"].dt, zone)
    elif "DURATION" in component:
        end = start + component["DURATION"].dt
    else:
        end = start + (timedelta(days=1) if all_day else timedelta(0))
    if end < start:
        raise ValueError("DTEND before DTSTART")
    return start, end, all_day


def _address(value: object) -> str:
    return fold_address(str(value or ""))


def _people(component: Any) -> tuple[str, tuple[Attendee, ...]]:
    organizer = _address(component.get("ORGANIZER"))
    raw = component.get("ATTENDEE", [])
    listed = raw if isinstance(raw, list) else [raw]
    people: list[Attendee] = []
    seen: set[str] = set()
    for entry in listed:
        email = _address(entry)
        if not email or email in seen:
            continue
        seen.add(email)
        params = getattr(entry, "params", {})
        kind = str(params.get("CUTYPE", "INDIVIDUAL")).upper()
        people.append(
            Attendee(
                email,
                storable(str(params.get("CN", ""))),
                is_resource=kind in ("ROOM", "RESOURCE"),
                is_group=kind == "GROUP",
                is_organizer=email == organizer,
                response=_RESPONSES.get(
                    str(params.get("PARTSTAT", "")).upper(), Response.NEEDS_ACTION
                ),
                optional=str(params.get("ROLE", "")).upper()
                in ("OPT-PARTICIPANT", "NON-PARTICIPANT"),
            )
        )
    if organizer and organizer not in seen:
        cn = getattr(component.get("ORGANIZER"), "params", {}).get("CN", "")
        people.insert(0, Attendee(organizer, storable(str(cn)), is_organizer=True))
    return organizer, tuple(people)


def event_of(
    calendar_id: str,
    event_id: str,
    component: Any,
    zone: tzinfo,
    *,
    series_id: str | None = None,
    recurring: bool = False,
) -> Event:
    start, end, all_day = _span(component, zone)
    organizer, attendees = _people(component)
    rid = component.get("RECURRENCE-ID")
    original = _moment(rid.dt, zone)[0] if rid is not None else None
    tag = component.get(TAG_PROPERTY)
    return Event(
        id=event_id,
        calendar_id=calendar_id,
        ical_uid=str(component["UID"]).strip(),
        title=str(component.get("SUMMARY") or ""),
        start=start,
        end=end,
        organizer=organizer,
        attendees=attendees,
        description=str(component.get("DESCRIPTION") or ""),
        description_is_html=False,
        all_day=all_day,
        cancelled=str(component.get("STATUS") or "").upper() == "CANCELLED",
        recurring=recurring,
        series_id=series_id,
        original_start=original,
        etag=digest(component),
        tag=str(tag) if tag is not None else None,
        is_organizer_copy=bool(organizer) and organizer == fold_address(calendar_id),
    )


def stored(calendar_id: str, resource: Resource, zone: tzinfo) -> Iterator[Event | Unreadable]:
    """The events as the resource stores them: the single event or master, then its overrides."""
    master = resource.master()
    for component in resource.components:
        try:
            if master is not None and component is master:
                recurring = any(key in component for key in _SERIES_ONLY)
                yield event_of(calendar_id, resource.name, component, zone, recurring=recurring)
            else:
                rid = component["RECURRENCE-ID"].dt
                yield event_of(
                    calendar_id,
                    occurrence_id(resource.name, rid),
                    component,
                    zone,
                    series_id=resource.name,
                )
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as error:
            yield Unreadable(resource.name, storable(f"{type(error).__name__}: {error}"[:300]))


def occurrences(
    calendar_id: str, resource: Resource, start: datetime, end: datetime, zone: tzinfo
) -> list[Event]:
    """The series' occurrences overlapping [start, end), overrides and cancellations applied."""
    found: list[Event] = []
    expanded = recurring_ical_events.of(resource.calendar, keep_recurrence_attributes=False)
    for component in expanded.between(start, end):
        rid = component.get("RECURRENCE-ID")
        moment = rid.dt if rid is not None else component["DTSTART"].dt
        found.append(
            event_of(
                calendar_id,
                occurrence_id(resource.name, moment),
                component,
                zone,
                series_id=resource.name,
            )
        )
        if len(found) >= _MAX_OCCURRENCES:
            break
    found.sort(key=lambda e: e.original_start or e.start)
    return found


def overlaps(resource: Resource, start: datetime, end: datetime) -> bool:
    """Whether anything of the resource happens in [start, end)."""
    expanded = recurring_ical_events.of(resource.calendar)
    return next(iter(expanded.between(start, end)), None) is not None


def occurrence(resource: Resource, recurrence: str, zone: tzinfo) -> Any | None:
    """The component of one occurrence: its override, or one generated from the master."""
    own = resource.override(recurrence)
    if own is not None:
        return own
    master = resource.master()
    if master is None or not any(key in master for key in _SERIES_ONLY):
        return None
    moment = _parse_stamp(recurrence, zone)
    if moment is None:
        return None
    expanded = recurring_ical_events.of(resource.calendar, keep_recurrence_attributes=False)
    for component in expanded.between(moment, moment + timedelta(seconds=1)):
        rid = component.get("RECURRENCE-ID")
        if rid is not None and _stamp(rid.dt) == recurrence:
            return component
    return None


def _parse_stamp(stamp: str, zone: tzinfo) -> datetime | None:
    for pattern, aware in (("%Y%m%dT%H%M%SZ", UTC), ("%Y%m%dT%H%M%S", zone), ("%Y%m%d", UTC)):
        try:
            return datetime.strptime(stamp, pattern).replace(tzinfo=aware)
        except ValueError:
            continue
    return None


def with_description(
    resource: Resource, recurrence: str | None, description: str, tag: str | None, zone: tzinfo
) -> tuple[icalendar.Calendar, Any]:
    """The resource with one component's DESCRIPTION (and our tag) replaced: (calendar, it).

    An occurrence without an override gets one, made from the master as the
    occurrence stands (its start and end, the master's other properties) and
    marked with its RECURRENCE-ID; the master's DTSTART and RRULE are never
    touched. Everything else in the resource (alarms, attachments, unknown
    properties, other overrides) is kept as it was.
    """
    calendar = icalendar.Calendar.from_ical(resource.calendar.to_ical())
    copy = Resource(resource.name, resource.etag, calendar)
    if recurrence is None:
        target = copy.master()
    else:
        target = copy.override(recurrence)
        if target is None:
            generated = occurrence(copy, recurrence, zone)
            if generated is None:
                raise LookupError(recurrence)
            target = _override_from(copy, generated)
            calendar.add_component(target)
    assert target is not None
    if "DESCRIPTION" in target:
        del target["DESCRIPTION"]
    target.add("DESCRIPTION", description)
    if TAG_PROPERTY in target:
        del target[TAG_PROPERTY]
    if tag is not None:
        target.add(TAG_PROPERTY, tag)
    return calendar, target


def _override_from(resource: Resource, generated: Any) -> Any:
    """A RECURRENCE-ID override for a generated occurrence, with the master's VALARMs."""
    master = resource.master()
    assert master is not None
    override = icalendar.Event()
    for key, value in generated.property_items(recursive=False):
        if key in ("BEGIN", "END", *_SERIES_ONLY):
            continue
        override.add(key, value, encode=False)
    if "RECURRENCE-ID" not in override:
        override.add("RECURRENCE-ID", generated["DTSTART"].dt)
    for alarm in master.walk("VALARM"):
        override.add_component(alarm)
    return override
