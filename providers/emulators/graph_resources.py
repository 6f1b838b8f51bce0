"""Graph v1.0 ``event`` JSON for a stored copy, in the shapes the real service answers.

What each copy of an event looks like on the wire, and the choices made where
the reference leaves room:

* Times are UTC: ``start``/``end`` as ``{"dateTime": "...0000000", "timeZone":
  "UTC"}`` with seven fractional digits, ``createdDateTime`` and
  ``lastModifiedDateTime`` with seven digits and ``Z``, ``originalStart``
  (occurrences and exceptions only) as ``...Z``. ``Prefer: outlook.timezone``
  is not honoured.
* ``attendees`` lists the invitees without the organizer, who is in
  ``organizer`` (as Outlook shows a meeting); rooms are attendees of type
  ``resource`` and also fill ``location``/``locations``. Responses map to
  ``none``/``accepted``/``tentativelyAccepted``/``declined``, the organizer's
  own copy says ``organizer``.
* ``showAs`` follows the syncd event type (out of office ``oof``, working
  location ``workingElsewhere``, other ``free``, otherwise ``busy``) and, on
  an attendee's copy, their response (``tentative`` until they answer).
* A cancelled occurrence on an attendee's copy is an exception with
  ``isCancelled: true`` and the subject prefixed ``Canceled: ``.
* A series in days that are a multiple of seven is a ``weekly`` pattern on the
  start's weekday, otherwise ``daily``; ``count`` makes a ``numbered`` range,
  ``until`` (without count) an ``endDate`` range, neither ``noEnd``.
* ``singleValueExtendedProperties`` appears only when asked for with
  ``$expand`` and only if some property matches; ``uid`` (beta only) is not
  emitted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from providers.model import Attendee, EventType, Response

from . import graph_body
from .graph_model import Item, occurrence_ical_uid
from .graph_store import Hit, MailboxStore, etag_of

__all__ = ["EVENT_TYPE", "kind", "removed", "render", "stub", "timestamp", "wire_time"]

EVENT_TYPE = "#microsoft.graph.event"
_NEVER = "0001-01-01T00:00:00Z"
_RESPONSES = {
    Response.NEEDS_ACTION: "none",
    Response.ACCEPTED: "accepted",
    Response.TENTATIVE: "tentativelyAccepted",
    Response.DECLINED: "declined",
}
_SHOW_AS = {
    EventType.OUT_OF_OFFICE: "oof",
    EventType.WORKING_LOCATION: "workingElsewhere",
    EventType.OTHER: "free",
}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def wire_time(moment: datetime) -> dict[str, str]:
    return {"dateTime": f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}0", "timeZone": "UTC"}


def timestamp(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}0Z"


def removed(event_id: str) -> dict[str, Any]:
    return {"@odata.type": EVENT_TYPE, "id": event_id, "@removed": {"reason": "deleted"}}


def stub(hit: Hit) -> dict[str, Any]:
    """A generated occurrence as calendarView delta lists it: only where and whose it is."""
    assert hit.moment is not None
    slot = hit.item.slot(hit.moment)
    return {
        "@odata.type": EVENT_TYPE,
        "@odata.etag": etag_of(hit),
        "id": hit.id,
        "seriesMasterId": hit.copy.id,
        "type": "occurrence",
        "start": wire_time(slot.start),
        "end": wire_time(slot.end),
    }


def kind(hit: Hit) -> str:
    if hit.moment is not None:
        return "exception" if hit.state is not None else "occurrence"
    return "seriesMaster" if hit.item.recurrence is not None else "singleInstance"


def render(
    store: MailboxStore,
    hit: Hit,
    *,
    props: frozenset[str] | None = None,
    text_body: bool = False,
) -> dict[str, Any]:
    """The full event; ``props`` are the extended property ids (case-folded) ``$expand`` asked for.

    An empty ``props`` set means "all of them".
    """
    item, moment = hit.item, hit.moment
    own = hit.state
    state = own or hit.copy.main
    organizer_copy = item.is_organizer(hit.mailbox)
    cancelled = moment is not None and item.slot(moment).cancelled
    if moment is None:
        start, end = item.start, item.end
        ical_uid = item.ical_uid
    else:
        slot = item.slot(moment)
        start, end = slot.start, slot.end
        ical_uid = occurrence_ical_uid(item.goid, moment)
    content = store.body(hit)
    body = (
        {"contentType": "text", "content": graph_body.to_text(content)}
        if text_body
        else {"contentType": "html", "content": content}
    )
    event: dict[str, Any] = {
        "@odata.etag": etag_of(hit),
        "id": hit.id,
        "createdDateTime": timestamp(hit.copy.created),
        "lastModifiedDateTime": timestamp(state.modified),
        "changeKey": state.change_key,
        "categories": [],
        "transactionId": None,
        "originalStartTimeZone": "UTC",
        "originalEndTimeZone": "UTC",
        "iCalUId": ical_uid,
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": not cancelled,
        "hasAttachments": False,
        "subject": f"Canceled: {item.title}" if cancelled else item.title,
        "bodyPreview": graph_body.preview(content),
        "importance": "normal",
        "sensitivity": "normal",
    }
    if moment is not None:
        event["originalStart"] = f"{moment:%Y-%m-%dT%H:%M:%S}Z"
    event.update(
        {
            "isAllDay": item.all_day,
            "isCancelled": cancelled,
            "isOrganizer": organizer_copy,
            "responseRequested": True,
            "seriesMasterId": hit.copy.id if moment is not None else None,
            "showAs": "free" if cancelled else _show_as(item, hit.mailbox),
            "type": kind(hit),
            "webLink": (
                "https://outlook.office365.com/owa/?itemid="
                f"{quote(hit.id, safe='')}&exvsurl=1&path=/calendar/item"
            ),
            "onlineMeetingUrl": None,
            "isOnlineMeeting": False,
            "onlineMeetingProvider": "unknown",
            "allowNewTimeProposals": True,
            "isDraft": False,
            "hideAttendees": False,
            "recurrence": _recurrence(item) if moment is None else None,
            "onlineMeeting": None,
            "responseStatus": _response_status(item, hit.mailbox),
            "body": body,
            "start": wire_time(start),
            "end": wire_time(end),
        }
    )
    rooms = [a for a in item.attendees if a.is_resource]
    places = [_location(room) for room in rooms]
    event["location"] = places[0] if places else _no_location()
    event["locations"] = places
    event["attendees"] = [_attendee(a) for a in item.attendees if not a.is_organizer]
    event["organizer"] = {"emailAddress": _email(_organizer(item))}
    if props is not None and own is not None:
        wanted = [
            {"id": written, "value": value}
            for folded, (written, value) in own.props.items()
            if not props or folded in props
        ]
        if wanted:
            event["singleValueExtendedProperties"] = wanted
    return event


def _organizer(item: Item) -> Attendee:
    return next(a for a in item.attendees if a.is_organizer)


def _email(person: Attendee) -> dict[str, str]:
    return {"name": person.name or person.email, "address": person.email}


def _attendee(person: Attendee) -> dict[str, Any]:
    role = "resource" if person.is_resource else "optional" if person.optional else "required"
    return {
        "type": role,
        "status": {"response": _RESPONSES[person.response], "time": _NEVER},
        "emailAddress": _email(person),
    }


def _response_status(item: Item, mailbox: str) -> dict[str, str]:
    if item.is_organizer(mailbox):
        return {"response": "organizer", "time": _NEVER}
    me = next((a for a in item.attendees if a.email.casefold() == mailbox.casefold()), None)
    response = me.response if me is not None else Response.NEEDS_ACTION
    return {"response": _RESPONSES[response], "time": _NEVER}


def _show_as(item: Item, mailbox: str) -> str:
    shown = _SHOW_AS.get(item.event_type, "busy")
    if shown != "busy" or item.is_organizer(mailbox):
        return shown
    me = next((a for a in item.attendees if a.email.casefold() == mailbox.casefold()), None)
    response = me.response if me is not None else Response.NEEDS_ACTION
    if response is Response.DECLINED:
        return "free"
    return "busy" if response is Response.ACCEPTED else "tentative"


def _no_location() -> dict[str, Any]:
    return {
        "displayName": "",
        "locationType": "default",
        "uniqueIdType": "unknown",
        "address": {},
        "coordinates": {},
    }


def _location(room: Attendee) -> dict[str, Any]:
    return {
        "displayName": room.name or room.email,
        "locationType": "conferenceRoom",
        "locationEmailAddress": room.email,
        "uniqueId": room.email,
        "uniqueIdType": "directory",
        "address": {},
        "coordinates": {},
    }


def _recurrence(item: Item) -> dict[str, Any] | None:
    rule = item.recurrence
    if rule is None:
        return None
    pattern: dict[str, Any]
    if rule.interval_days % 7 == 0:
        pattern = {
            "type": "weekly",
            "interval": rule.interval_days // 7,
            "month": 0,
            "dayOfMonth": 0,
            "daysOfWeek": [_WEEKDAYS[item.start.weekday()]],
            "firstDayOfWeek": "sunday",
            "index": "first",
        }
    else:
        pattern = {
            "type": "daily",
            "interval": rule.interval_days,
            "month": 0,
            "dayOfMonth": 0,
            "firstDayOfWeek": "sunday",
            "index": "first",
        }
    span: dict[str, Any] = {
        "type": "noEnd",
        "startDate": item.start.date().isoformat(),
        "endDate": "0001-01-01",
        "recurrenceTimeZone": "UTC",
        "numberOfOccurrences": 0,
    }
    if rule.count is not None:
        span.update(type="numbered", numberOfOccurrences=rule.count)
    elif rule.until is not None:
        span.update(type="endDate", endDate=rule.until.date().isoformat())
    return {"pattern": pattern, "range": span}
