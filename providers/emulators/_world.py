"""World-building both emulators pass straight to their store.

Tests script people's edits through the emulator object, as they do on
``providers.memory``, so one contract suite runs against every provider; where
the stores already agree on what an edit means, the emulators need not each
restate it. Methods whose meaning differs per service stay in each emulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from syncd.model import Attendee

from .google_state import CalendarStore
from .graph_store import MailboxStore

__all__ = ["WorldEdits"]


class WorldEdits:
    _store: CalendarStore | MailboxStore

    def edit_description(self, calendar: str, event_id: str, description: str) -> None:
        self._store.edit_description(calendar, event_id, description)

    def move_occurrence(
        self, ical_uid: str, original_start: datetime, new_start: datetime, new_end: datetime
    ) -> None:
        self._store.move_occurrence(ical_uid, original_start, new_start, new_end)

    def cancel_occurrence(self, ical_uid: str, original_start: datetime) -> None:
        self._store.cancel_occurrence(ical_uid, original_start)

    def delete_event(self, ical_uid: str) -> None:
        self._store.delete_event(ical_uid)

    def update_event(
        self,
        ical_uid: str,
        *,
        title: str | None = None,
        attendees: Sequence[str | Attendee] | None = None,
    ) -> None:
        self._store.update_event(ical_uid, title=title, attendees=attendees)
