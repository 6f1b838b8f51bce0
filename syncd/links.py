"""``syncd links``: the agenda links the invites carry, as an admin or a person asks for them.

Read from the mirror of the organizer copies: an upcoming 1:1 whose copy
holds a block has its link in the invite, and that is the link listed, so
what this prints is what people find in their calendars (also right after a
database was rebuilt from the invites, when syncd itself wrote nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from syncd import agenda
from syncd.store.models import Calendar, Meeting, Occurrence


@dataclass(frozen=True, slots=True)
class Link:
    """One agenda to open: who meets, when, and the page."""

    start: datetime
    people: str
    url: str
    calendar: str = ""

    def line(self) -> str:
        where = f"  ({self.calendar})" if self.calendar else ""
        return f"  {self.start:%a %d %b %H:%M} UTC  {self.people:<11}  {self.url}{where}"


def people(meeting: Meeting) -> str:
    pair = meeting.pair
    return f"{agenda.display_name(pair.person_a)} + {agenda.display_name(pair.person_b)}"


def in_invites(
    session: Session, base_url: str, now: datetime, calendar: str | None = None
) -> list[Link]:
    """Upcoming meetings whose organizer copy carries a block, soonest first."""
    query = (
        select(Meeting, Calendar.address)
        .join(
            Occurrence,
            and_(
                Occurrence.ical_uid == Meeting.ical_uid,
                Occurrence.original_start == Meeting.original_start,
            ),
        )
        .join(Calendar, Calendar.id == Occurrence.calendar_id)
        .where(
            Occurrence.organizer_copy.is_(True),
            Occurrence.has_block.is_(True),
            Occurrence.pair_id.is_not(None),
            Meeting.start > now,
            Meeting.cancelled.is_(False),
        )
        .order_by(Meeting.start, Meeting.id)
    )
    if calendar is not None:
        query = query.where(Calendar.address == calendar.casefold())
    return [
        Link(meeting.start, people(meeting), agenda.meeting_url(base_url, meeting), address)
        for meeting, address in session.execute(query).all()
    ]
