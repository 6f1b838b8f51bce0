"""One calendar's mirrored rows, by event id, for the length of one sync's transaction.

A first sync of a calendar mirrors every event and every occurrence of its
series: asked one row at a time (a SELECT and a flush each), that was most
of what onboarding an organization cost. Read once into a dict, the rows
are found in memory and written in the session's batched flush.

Only for one transaction of one calendar: the dict is as true as the
session's identity map, and every removal the engine makes goes through
``drop`` so that a row deleted by a bulk statement is not handed out again.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from syncd.store.models import Occurrence

#: Events in one pull from which reading the whole calendar's mirror at once is
#: cheaper than a SELECT per event (a recurring one counts for its occurrences).
PRELOAD_FROM = 8


class Mirror:
    """The rows of ``calendar_id`` this sync has looked at, loaded on demand or all at once."""

    def __init__(self, session: Session, calendar_id: int) -> None:
        self.session = session
        self.calendar_id = calendar_id
        self._rows: dict[str, Occurrence] = {}
        self._complete = False  # every row of the calendar is in _rows
        #: event ids whose row this session deleted and has not flushed yet
        self._deleted: set[str] = set()

    def load(self) -> None:
        """Read every row of the calendar now, so that lookups ask the database no more."""
        if self._complete:
            return
        for row in self.session.scalars(
            select(Occurrence).where(Occurrence.calendar_id == self.calendar_id)
        ):
            self._rows.setdefault(row.event_id, row)
        self._complete = True

    def get(self, event_id: str) -> Occurrence | None:
        row = self._rows.get(event_id)
        if row is not None or self._complete:
            return row
        row = self.session.scalars(
            select(Occurrence).where(
                Occurrence.calendar_id == self.calendar_id, Occurrence.event_id == event_id
            )
        ).one_or_none()
        if row is not None:
            self._rows[event_id] = row
        return row

    def add(self, event_id: str) -> Occurrence:
        """A new row for ``event_id``, pending in the session (inserted at the next flush).

        If this session deleted the event's row earlier (a series expansion
        swept an occurrence that the change feed then brought back, moved),
        that DELETE is flushed first: the unit of work would otherwise run the
        INSERT before it and break the (calendar, event) key.
        """
        if event_id in self._deleted:
            self.session.flush()
            self._deleted.discard(event_id)
        row = Occurrence(calendar_id=self.calendar_id, event_id=event_id)
        self.session.add(row)
        self._rows[event_id] = row
        return row

    def delete(self, row: Occurrence) -> None:
        self.session.delete(row)
        self._rows.pop(row.event_id, None)
        self._deleted.add(row.event_id)

    def drop(self, event_id: str) -> list[str]:
        """Forget the event and its occurrences, deleted by a bulk statement; their ids."""
        dropped = [k for k, r in self._rows.items() if event_id in (k, r.series_id)]
        for key in dropped:
            row = self._rows.pop(key)
            if row in self.session:
                self.session.expunge(row)
        return dropped
