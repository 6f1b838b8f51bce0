"""The last description read of each copy syncd may write, kept in memory for the write.

A block rewrite must keep everything else a person put in the description,
so it needs the current text. Reading it again before every write (a GET of
an event the last poll had just listed) is one call per change that the
mirror's etag makes unnecessary: the write goes with ``If-Match`` on that
etag, and the server refuses it (412) if the text changed since, which is
exactly when a re-read is needed.

The text is held here, not in the database: descriptions carry what people
wrote, conference passcodes among it, and must go back character for
character (the database would need them cleaned). The cost is that a new
process, or a calendar synced last by another worker, reads once before it
writes. Only organizer copies of 1:1s are kept (nothing else is ever
written), least recently used first out, within a bound in characters.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from providers.model import Event

__all__ = ["Body", "Bodies"]

#: 16 M characters (16 MB of ASCII): thousands of invites of a few KB. Beyond it
#: the oldest are dropped, which costs a GET at their next write, never a write.
DEFAULT_LIMIT_CHARS = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Body:
    """What a write needs of one copy as last read: its text, its kind, our tag, its version."""

    etag: str
    description: str
    is_html: bool
    tag: str | None

    @classmethod
    def of(cls, event: Event) -> Body:
        return cls(event.etag, event.description, event.description_is_html, event.tag)

    @property
    def size(self) -> int:
        return len(self.description) + len(self.tag or "") + len(self.etag)


class Bodies:
    """Shared by every sync thread of a process; each call holds the lock briefly."""

    def __init__(self, limit_chars: int = DEFAULT_LIMIT_CHARS) -> None:
        self._limit = limit_chars
        self._lock = threading.Lock()
        self._held: OrderedDict[tuple[str, str], Body] = OrderedDict()
        self._size = 0

    def keep(self, calendar: str, event: Event) -> None:
        body = Body.of(event)
        key = (calendar, event.id)
        with self._lock:
            self._drop(key)
            if body.size > self._limit:
                return
            self._held[key] = body
            self._size += body.size
            while self._size > self._limit:
                self._drop(next(iter(self._held)))

    def get(self, calendar: str, event_id: str, etag: str) -> Body | None:
        """The text of this version (``etag``) of the copy, if it is the one held."""
        key = (calendar, event_id)
        with self._lock:
            body = self._held.get(key)
            if body is None or body.etag != etag:
                return None
            self._held.move_to_end(key)
            return body

    def forget(self, calendar: str, event_id: str) -> None:
        with self._lock:
            self._drop((calendar, event_id))

    @property
    def size(self) -> int:
        """Characters held: what the bound is measured in."""
        with self._lock:
            return self._size

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)

    def _drop(self, key: tuple[str, str]) -> None:
        body = self._held.pop(key, None)
        if body is not None:
            self._size -= body.size
