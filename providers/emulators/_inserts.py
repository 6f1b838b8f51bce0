"""Event inserts: ``events.insert`` (Google) and ``POST /users/{id}/events`` (Graph).

Both read the request body of their service into one ``Insert``, which the
calendar model creates as the organizer (the calendar's owner), so a script or
an admin can add events to an emulator running alone, as they would to the
real service. What the model cannot hold is refused with the service's 400:
recurrence is daily or weekly with an interval and an optional count (Google
``RRULE:FREQ=DAILY|WEEKLY;INTERVAL=n;COUNT=c``, Graph ``pattern.type`` daily
or weekly with ``range`` noEnd or numbered), times carry a zone (an IANA name
or UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from providers.body import looks_html
from providers.calendar_model import Recurrence

__all__ = ["Insert", "InvalidInsert", "from_google", "from_graph"]


class InvalidInsert(ValueError):
    """The body cannot be an event; ``field`` is where, for the service's error body."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Insert:
    attendees: list[str]
    title: str
    start: datetime
    end: datetime
    description: str = ""
    html: bool = False
    all_day: bool = False
    recurrence: Recurrence | None = None
    ical_uid: str | None = None

    def create(self, world: Any, organizer: str) -> str:
        """Create it in ``world`` as ``organizer``; its iCalUID."""
        uid: str = world.create_event(
            organizer,
            [organizer, *(a for a in self.attendees if a.casefold() != organizer.casefold())],
            self.title,
            self.start,
            self.end,
            description=self.description,
            html=self.html,
            all_day=self.all_day,
            recurrence=self.recurrence,
            ical_uid=self.ical_uid,
        )
        return uid


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInsert("body", "The request body must be a JSON object.")
    return body


def _zone(name: object, field: str) -> ZoneInfo:
    text = str(name or "UTC")
    if text in ("UTC", "Etc/UTC", "Z"):
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInsert(field, f"Invalid time zone definition: {text}") from None


def _moment(raw: object, field: str, default_zone: object = None) -> tuple[datetime, bool]:
    """A start or end: (moment in UTC, all-day)."""
    if not isinstance(raw, dict):
        raise InvalidInsert(field, f"Missing {field} time.")
    zone = _zone(raw.get("timeZone") or default_zone, f"{field}.timeZone")
    if raw.get("date") is not None:
        try:
            day = datetime.fromisoformat(str(raw["date"])).date()
        except ValueError:
            raise InvalidInsert(field, f"Invalid {field} date.") from None
        return datetime.combine(day, time(), tzinfo=UTC), True
    try:
        moment = datetime.fromisoformat(str(raw.get("dateTime", "")).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInsert(field, f"Invalid {field} time.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC), False


def _span(body: dict[str, Any], default_zone: object = None) -> tuple[datetime, datetime, bool]:
    start, all_day = _moment(body.get("start"), "start", default_zone)
    end, _ = _moment(body.get("end"), "end", default_zone)
    if end <= start:
        raise InvalidInsert("end", "The specified time range is empty.")
    return start, end, all_day


def _google_recurrence(lines: object) -> Recurrence | None:
    if not lines:
        return None
    if not isinstance(lines, list):
        raise InvalidInsert("recurrence", "Invalid recurrence rule.")
    for line in lines:
        text = str(line)
        if not text.startswith("RRULE:"):
            continue  # EXDATE and RDATE are not modelled
        parts = dict(part.split("=", 1) for part in text[6:].split(";") if "=" in part)
        step = {"DAILY": 1, "WEEKLY": 7}.get(parts.get("FREQ", ""))
        try:
            interval = int(parts.get("INTERVAL", "1"))
            count = int(parts["COUNT"]) if "COUNT" in parts else None
        except ValueError:
            raise InvalidInsert("recurrence", f"Invalid recurrence rule: {text}") from None
        if step is None or interval < 1 or (count is not None and count < 1):
            raise InvalidInsert("recurrence", f"Invalid recurrence rule: {text}")
        return Recurrence(step * interval, count=count)
    return None


def from_google(body: object) -> Insert:
    """An ``events.insert`` body (Calendar API v3 Event resource)."""
    event = _object(body)
    start, end, all_day = _span(event)
    attendees = event.get("attendees") or []
    if not isinstance(attendees, list) or not all(
        isinstance(a, dict) and isinstance(a.get("email"), str) for a in attendees
    ):
        raise InvalidInsert("attendees", "Invalid attendee email.")
    description = str(event.get("description") or "")
    return Insert(
        attendees=[a["email"] for a in attendees],
        title=str(event.get("summary") or ""),
        start=start,
        end=end,
        description=description,
        html=looks_html(description),
        all_day=all_day,
        recurrence=_google_recurrence(event.get("recurrence")),
        ical_uid=str(event["iCalUID"]) if event.get("iCalUID") else None,
    )


def _graph_recurrence(raw: object) -> Recurrence | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidInsert("recurrence", "The recurrence is invalid.")
    pattern, span = raw.get("pattern") or {}, raw.get("range") or {}
    step = {"daily": 1, "weekly": 7}.get(str(pattern.get("type", "")))
    interval = pattern.get("interval", 1)
    if step is None or not isinstance(interval, int) or interval < 1:
        raise InvalidInsert("recurrence.pattern", "The recurrence pattern is not supported.")
    count = None
    if span.get("type") == "numbered":
        count = span.get("numberOfOccurrences")
        if not isinstance(count, int) or count < 1:
            raise InvalidInsert("recurrence.range", "numberOfOccurrences must be at least 1.")
    elif span.get("type") not in (None, "noEnd"):
        raise InvalidInsert("recurrence.range", "The recurrence range is not supported.")
    return Recurrence(step * interval, count=count)


def from_graph(body: object) -> Insert:
    """A ``POST /users/{id}/events`` body (Graph v1.0 event resource)."""
    event = _object(body)
    start, end, _ = _span(event)
    attendees = event.get("attendees") or []
    addresses = []
    for attendee in attendees if isinstance(attendees, list) else [None]:
        email = (attendee or {}).get("emailAddress") if isinstance(attendee, dict) else None
        address = email.get("address") if isinstance(email, dict) else None
        if not isinstance(address, str) or "@" not in address:
            raise InvalidInsert("attendees", "An attendee has no valid emailAddress.address.")
        addresses.append(address)
    content = event.get("body") or {}
    if not isinstance(content, dict):
        raise InvalidInsert("body", "The body must be an itemBody.")
    all_day = bool(event.get("isAllDay", False))
    if all_day and (start.time() != time() or (end - start) % timedelta(days=1)):
        raise InvalidInsert("isAllDay", "An all-day event starts and ends at midnight.")
    return Insert(
        attendees=addresses,
        title=str(event.get("subject") or ""),
        start=start,
        end=end,
        description=str(content.get("content") or ""),
        html=str(content.get("contentType", "text")).lower() == "html",
        all_day=all_day,
        recurrence=_graph_recurrence(event.get("recurrence")),
    )
