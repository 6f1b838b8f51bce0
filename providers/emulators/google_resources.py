"""The emulated calendars rendered as Calendar API v3 ``Event`` resources.

Every field written here exists in the ``Event`` schema of the discovery
document that ships with google-api-python-client (a test checks it), and
fields are left out where Google leaves them out: an empty description, the
attendee list of an event nobody else was invited to, extended properties
that were never set.

Cancelled exceptions and deleted events come in the stub forms the ``status``
field documents: a cancelled exception carries only ``id``,
``recurringEventId`` and ``originalStartTime`` (plus ``kind``, ``etag`` and
``status``); a deleted event only ``id`` (plus the same three), except on the
organizer's calendar, which keeps its details unless an incremental sync
without ``showDeleted`` asked.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from providers.model import EventType

from .google_model import STAMP, Copy, Item, Tombstone, instance_id

__all__ = [
    "EVENT_TYPES",
    "cancelled_occurrence",
    "event_time",
    "parse_rfc3339",
    "render",
    "rfc3339",
    "rfc3339_ms",
    "rrule",
    "tombstone",
]

TIME_ZONE = "UTC"

EVENT_TYPES = {
    EventType.DEFAULT: "default",
    EventType.OUT_OF_OFFICE: "outOfOffice",
    EventType.FOCUS_TIME: "focusTime",
    EventType.WORKING_LOCATION: "workingLocation",
    # Not a Google type; Gmail-made events are the nearest "never a 1:1" kind.
    EventType.OTHER: "fromGmail",
}

_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def rfc3339_ms(moment: datetime) -> str:
    """``created``/``updated`` style: UTC with milliseconds, as Google writes them."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 timestamp with a mandatory offset; ``ValueError`` otherwise."""
    moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone offset")
    return moment.astimezone(UTC)


def event_time(moment: datetime, all_day: bool) -> dict[str, str]:
    if all_day:
        return {"date": moment.astimezone(UTC).date().isoformat()}
    return {"dateTime": rfc3339(moment), "timeZone": TIME_ZONE}


def _all_day_end(start: datetime, end: datetime) -> datetime:
    """All-day ends are exclusive dates; a zero-length all-day event still spans its day."""
    if end.date() <= start.date():
        return datetime.combine(start.date() + timedelta(days=1), end.timetz())
    return end


def rrule(item: Item) -> list[str]:
    """The series as Google writes it: weekly with BYDAY when it can be, else daily."""
    rule = item.recurrence
    if rule is None:
        return []
    weeks, rest = divmod(rule.interval_days, 7)
    if rest == 0:
        parts = ["FREQ=WEEKLY"]
        if weeks > 1:
            parts.append(f"INTERVAL={weeks}")
        parts.append(f"BYDAY={_WEEKDAYS[item.start.astimezone(UTC).weekday()]}")
    else:
        parts = ["FREQ=DAILY"]
        if rule.interval_days > 1:
            parts.append(f"INTERVAL={rule.interval_days}")
    if rule.count is not None:
        parts.append(f"COUNT={rule.count}")
    if rule.until is not None:
        until = rule.until.astimezone(UTC)
        parts.append(f"UNTIL={until:%Y%m%d}" if item.all_day else f"UNTIL={until:{STAMP}}")
    return ["RRULE:" + ";".join(parts)]


def _html_link(event_id: str, calendar: str) -> str:
    eid = base64.urlsafe_b64encode(f"{event_id} {calendar}".encode()).decode().rstrip("=")
    return f"https://www.google.com/calendar/event?eid={eid}"


def _person(email: str, name: str, calendar: str) -> dict[str, Any]:
    person: dict[str, Any] = {"email": email}
    if name:
        person["displayName"] = name
    if email.casefold() == calendar.casefold():
        person["self"] = True
    return person


def _attendees(item: Item, calendar: str) -> list[dict[str, Any]]:
    """Google lists no attendees for an event the organizer holds alone."""
    others = [a for a in item.attendees if a.email.casefold() != item.organizer.casefold()]
    if not others:
        return []
    rendered: list[dict[str, Any]] = []
    for attendee in item.attendees:
        entry = _person(attendee.email, attendee.name, calendar)
        if attendee.email.casefold() == item.organizer.casefold():
            entry["organizer"] = True
        if attendee.is_resource:
            entry["resource"] = True
        if attendee.optional:
            entry["optional"] = True
        entry["responseStatus"] = attendee.response.value
        rendered.append(entry)
    return rendered


def _organizer_name(item: Item) -> str:
    for attendee in item.attendees:
        if attendee.email.casefold() == item.organizer.casefold():
            return attendee.name
    return ""


def render(item: Item, calendar: str, copy: Copy, moment: datetime | None) -> dict[str, Any]:
    """One copy of an event, master or occurrence (generated or exception), live."""
    if moment is not None and item.slot(moment).cancelled:
        return cancelled_occurrence(item, copy, moment)
    state = copy.main if moment is None else copy.occurrences.get(moment)
    description = copy.main.description or ""
    private, shared = dict(copy.main.private), dict(copy.main.shared)
    if moment is None:
        event_id, etag, updated = item.id, copy.main.etag, copy.main.updated
        start, end = item.start, item.end
    else:
        event_id = instance_id(item, moment)
        slot = item.slot(moment)
        start, end = slot.start, slot.end
        if state is None:
            etag = _derived_etag(copy.main.etag, moment)
            updated = copy.main.updated
        else:
            etag, updated = state.etag, state.updated
            if state.description is not None:
                description = state.description
            private.update(state.private)
            shared.update(state.shared)
    if item.all_day:
        end = _all_day_end(start, end)
    name = _organizer_name(item)
    resource: dict[str, Any] = {
        "kind": "calendar#event",
        "etag": etag,
        "id": event_id,
        "status": "confirmed",
        "htmlLink": _html_link(event_id, calendar),
        "created": rfc3339_ms(item.created),
        "updated": rfc3339_ms(updated),
        "summary": item.title,
    }
    if description:
        resource["description"] = description
    resource["creator"] = _person(item.organizer, name, calendar)
    resource["organizer"] = _person(item.organizer, name, calendar)
    resource["start"] = event_time(start, item.all_day)
    resource["end"] = event_time(end, item.all_day)
    if moment is None and item.recurrence is not None:
        resource["recurrence"] = rrule(item)
    if moment is not None:
        resource["recurringEventId"] = item.id
        resource["originalStartTime"] = event_time(moment, item.all_day)
    resource["iCalUID"] = item.ical_uid
    moved = moment is not None and moment in item.shifts
    resource["sequence"] = item.sequence + (1 if moved else 0)
    attendees = _attendees(item, calendar)
    if attendees:
        resource["attendees"] = attendees
    properties: dict[str, dict[str, str]] = {}
    if private:
        properties["private"] = private
    if shared:
        properties["shared"] = shared
    if properties:
        resource["extendedProperties"] = properties
    resource["reminders"] = {"useDefault": True}
    resource["eventType"] = EVENT_TYPES[item.event_type]
    return resource


def cancelled_occurrence(item: Item, copy: Copy, moment: datetime) -> dict[str, Any]:
    """The stub Google gives for a cancelled exception: identity and nothing else."""
    state = copy.occurrences.get(moment)
    etag = state.etag if state is not None else _derived_etag(copy.main.etag, moment)
    return {
        "kind": "calendar#event",
        "etag": etag,
        "id": instance_id(item, moment),
        "status": "cancelled",
        "recurringEventId": item.id,
        "originalStartTime": event_time(moment, item.all_day),
    }


def tombstone(event_id: str, stone: Tombstone, *, details: bool) -> dict[str, Any]:
    """A deleted copy: its last details where Google keeps them, else only its id."""
    if details and stone.organizer_copy:
        return dict(stone.resource, etag=stone.etag, updated=rfc3339_ms(stone.updated))
    return {"kind": "calendar#event", "etag": stone.etag, "id": event_id, "status": "cancelled"}


def _derived_etag(master_etag: str, moment: datetime) -> str:
    """A generated occurrence's etag: new whenever its master's is, unique per occurrence."""
    return f'"{master_etag.strip(chr(34))}{moment:%Y%m%d%H%M%S}"'
