"""World-building both emulators pass straight to their store.

Tests script people's edits through the emulator object, as they do on
``providers.memory``, so one contract suite runs against every provider. Both
stores are ``CalendarWorld``s and already agree on what an edit means, so the
emulators forward to them rather than restate each method: a forwarded method
has the very signature (and docstring) of ``CalendarWorld``'s, and a change
there reaches both emulators without an edit here.

What differs per service happens inside each store: Google keeps no HTML flag
(``create_event(html=True)`` makes a description that holds HTML), Exchange
stores a description as Outlook would and wraps a given ``ical_uid`` the way
it wraps a foreign UID (the returned iCalUID is what Graph shows; the given
one is accepted wherever an iCalUID is expected). Google shares one event id
among every attendee's copy; Exchange gives each mailbox its own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from providers.calendar_world import CalendarWorld

from ._mail import MeetingMail
from .google_state import CalendarStore
from .graph_store import MailboxStore

__all__ = ["WorldEdits"]

P = ParamSpec("P")
R = TypeVar("R")


def _forward(
    method: Callable[Concatenate[CalendarWorld[Any, Any, Any, Any], P], R],
) -> Callable[Concatenate[WorldEdits, P], R]:
    """``method``, called on the emulator's store (looked up there, so overrides count)."""
    name = method.__name__

    def forwarded(self: WorldEdits, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return cast(R, getattr(self._store, name)(*args, **kwargs))

    functools.update_wrapper(forwarded, method)  # name, docstring; signature via __wrapped__
    forwarded.__module__, forwarded.__qualname__ = __name__, f"WorldEdits.{name}"
    return forwarded


class WorldEdits:
    _store: CalendarStore | MailboxStore

    create_event = _forward(CalendarWorld.create_event)
    copy_id = _forward(CalendarWorld.copy_id)
    edit_description = _forward(CalendarWorld.edit_description)
    move_occurrence = _forward(CalendarWorld.move_occurrence)
    cancel_occurrence = _forward(CalendarWorld.cancel_occurrence)
    delete_event = _forward(CalendarWorld.delete_event)
    update_event = _forward(CalendarWorld.update_event)

    def description(self, calendar: str, event_id: str) -> str:
        """The description as the API returns it (Graph: HTML), without it counting as a request."""
        return self._store.description(calendar, event_id)

    @property
    def mails(self) -> list[MeetingMail]:
        """Every meeting update the real server would have mailed to an attendee so far."""
        return self._store.outbox.sent()

    def expire_cursors(self, calendar: str) -> None:
        """Every sync or delta token issued so far for ``calendar`` now answers 410."""
        self._store.expire(calendar)
