"""Query options and ``Prefer`` headers of Graph requests, parsed and checked as Graph does.

Kept apart from the views so each view reads as what it returns. Choices
where the reference leaves room: ``startDateTime``/``endDateTime`` accept
ISO 8601 with or without an offset (none means UTC), up to seven fractional
digits, or a bare date; an unknown ``$select`` property or ``$expand`` target
is 400 ``RequestBroker--ParseUri``; ``$expand`` understands only
``singleValueExtendedProperties``, optionally with ``$filter=id eq '...'``
clauses joined by ``or`` (without a filter it expands every property).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from .graph_errors import GraphError

__all__ = [
    "EVENT_PROPERTIES",
    "Prefer",
    "apply_select",
    "expand_filter",
    "option",
    "parse_time",
    "property_key",
    "select",
    "window",
]

Query = dict[str, list[str]]

# Property names of microsoft.graph.event in v1.0 (as the SDK's model knows them).
EVENT_PROPERTIES = frozenset(
    {
        "allowNewTimeProposals", "attachments", "attendees", "body", "bodyPreview", "calendar",
        "cancelledOccurrences", "categories", "changeKey", "createdDateTime", "end",
        "exceptionOccurrences", "extensions", "hasAttachments", "hideAttendees", "iCalUId", "id",
        "importance", "instances", "isAllDay", "isCancelled", "isDraft", "isOnlineMeeting",
        "isOrganizer", "isReminderOn", "lastModifiedDateTime", "location", "locations",
        "multiValueExtendedProperties", "onlineMeeting", "onlineMeetingProvider",
        "onlineMeetingUrl", "organizer", "originalEndTimeZone", "originalStart",
        "originalStartTimeZone", "recurrence", "reminderMinutesBeforeStart",
        "responseRequested", "responseStatus", "sensitivity", "seriesMasterId", "showAs",
        "singleValueExtendedProperties", "start", "subject", "transactionId", "type", "webLink",
    }
)  # fmt: skip
_FOLDED = {name.casefold(): name for name in EVENT_PROPERTIES}
_EXPAND = re.compile(
    r"^\s*singleValueExtendedProperties\s*(?:\(\s*\$filter\s*=\s*(?P<filter>.*)\))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CLAUSE = re.compile(r"^\s*id\s+eq\s+'(?P<value>(?:[^']|'')*)'\s*$", re.IGNORECASE)
_FRACTION = re.compile(r"(\.\d{1,6})\d*")
_WINDOW_REQUIRED = (
    "This request requires a time window specified by the query string parameters "
    "StartDateTime and EndDateTime."
)


@dataclass(frozen=True)
class Prefer:
    """What a request's ``Prefer`` headers ask for, and how to say it was applied."""

    page_size: int | None = None
    text_body: bool = False

    @classmethod
    def parse(cls, header: str | None) -> Prefer:
        page_size: int | None = None
        text_body = False
        for part in (header or "").split(","):
            name, _, value = part.strip().partition("=")
            value = value.strip().strip('"')
            if name.strip().lower() == "odata.maxpagesize" and value.isdigit() and int(value) > 0:
                page_size = int(value)
            elif name.strip().lower() == "outlook.body-content-type":
                text_body = value.lower() == "text"
        return cls(page_size, text_body)

    def applied(self, *extra: str) -> dict[str, str]:
        parts = list(extra)
        if self.page_size is not None:
            parts.append(f"odata.maxpagesize={self.page_size}")
        if self.text_body:
            parts.append('outlook.body-content-type="text"')
        return {"Preference-Applied": ", ".join(parts)} if parts else {}


def property_key(property_id: str) -> str:
    """How extended property ids compare: case-insensitively, whitespace collapsed."""
    return " ".join(property_id.split()).casefold()


def option(query: Query, name: str) -> str | None:
    """A query option by name, case-insensitively as OData reads them; the last one wins."""
    for key, values in query.items():
        if key.casefold() == name.casefold() and values:
            return values[-1]
    return None


def parse_time(value: str, name: str) -> datetime:
    text = _FRACTION.sub(r"\1", value.strip())
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise GraphError(
            400, "ErrorInvalidParameter", f"The value '{value}' of parameter '{name}' is invalid."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def window(query: Query) -> tuple[datetime, datetime]:
    """The required ``startDateTime``/``endDateTime`` of a calendar view or instances call."""
    start, end = option(query, "startDateTime"), option(query, "endDateTime")
    if start is None or end is None:
        raise GraphError(400, "ErrorInvalidParameter", _WINDOW_REQUIRED)
    lower, upper = parse_time(start, "StartDateTime"), parse_time(end, "EndDateTime")
    if upper <= lower:
        raise GraphError(
            400,
            "ErrorInvalidParameter",
            "The parameter 'EndDateTime' must be after 'StartDateTime'.",
        )
    return lower, upper


def _unknown_property(name: str) -> GraphError:
    return GraphError(
        400,
        "RequestBroker--ParseUri",
        f"Could not find a property named '{name}' on type 'microsoft.graph.event'.",
    )


def select(query: Query) -> frozenset[str] | None:
    """The properties ``$select`` keeps (``id`` and the etag always stay); None keeps all."""
    raw = option(query, "$select")
    if raw is None:
        return None
    names: set[str] = set()
    for part in raw.split(","):
        name = part.strip()
        if not name:
            continue
        known = _FOLDED.get(name.casefold())
        if known is None:
            raise _unknown_property(name)
        names.add(known)
    return frozenset(names | {"id"})


def expand_filter(query: Query) -> frozenset[str] | None:
    """Extended property ids (case-folded) ``$expand`` asks for; empty means all; None: none."""
    raw = option(query, "$expand")
    if raw is None:
        return None
    match = _EXPAND.match(raw)
    if match is None:
        target = raw.split("(")[0].strip()
        raise _unknown_property(target)
    clause = match.group("filter")
    if clause is None:
        return frozenset()
    ids: set[str] = set()
    for part in re.split(r"\s+or\s+", clause.strip(), flags=re.IGNORECASE):
        found = _CLAUSE.match(part)
        if found is None:
            raise GraphError(400, "BadRequest", f"Invalid filter clause: {clause}")
        ids.add(property_key(found.group("value").replace("''", "'")))
    return frozenset(ids)


def apply_select(event: dict[str, object], keep: frozenset[str] | None) -> dict[str, object]:
    if keep is None:
        return event
    return {k: v for k, v in event.items() if k.startswith("@") or k in keep}
