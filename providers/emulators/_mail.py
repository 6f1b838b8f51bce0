"""The meeting updates a calendar server would mail to attendees, recorded instead of sent.

syncd's promise is that nobody is mailed by surprise, and that can only be
tested if the emulators say when the real servers would mail. Each one
decides when, from its own reference (graph_store, google_state); this
module only keeps the record: one ``MeetingMail`` per recipient per write,
as the recipients would find them in their inboxes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

__all__ = ["MeetingMail", "Outbox"]


@dataclass(frozen=True)
class MeetingMail:
    """One meeting update in one attendee's inbox.

    ``occurrence`` is the original start of the occurrence written, None for
    a single event or a whole series.
    """

    recipient: str
    organizer: str
    ical_uid: str
    occurrence: datetime | None
    subject: str
    at: datetime


class Outbox:
    """Every meeting update so far, in the order the writes were made; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: list[MeetingMail] = []

    def meeting_update(
        self,
        *,
        organizer: str,
        recipients: Iterable[str],
        ical_uid: str,
        occurrence: datetime | None,
        subject: str,
        at: datetime,
    ) -> None:
        mails = [
            MeetingMail(address, organizer, ical_uid, occurrence, subject, at)
            for address in dict.fromkeys(recipients)
            if address.casefold() != organizer.casefold()
        ]
        with self._lock:
            self._sent.extend(mails)

    def sent(self) -> list[MeetingMail]:
        with self._lock:
            return list(self._sent)

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()
