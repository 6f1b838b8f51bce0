"""An in-process calendar system that behaves like Google Calendar and Graph where it matters.

The engine is only as good as the fake it is tested against, so this provider
keeps the shapes that make real calendars awkward instead of a convenient
dict of events:

* **Copies.** An event lives once per calendar that holds it. Each copy has
  its own id (as in Graph; Google reuses ids, so code that relies on equal
  ids would pass here only by accident), its own etag, its own hidden tag
  and, because an attendee may type into their copy, its own description.
  All copies share the iCalUID. Only the calendars this provider holds get
  copies; other attendees are merely listed.
* **Series.** A recurring event is one master plus occurrences generated on
  demand from its ``Recurrence``. An occurrence is named by its original
  start: its id is ``{master id}_{YYYYMMDDTHHMMSSZ}`` and neither id nor
  original start changes when it is moved. A move or cancellation (the
  organizer's, so it reaches every copy) is a *shift*; a description edit is
  a per-copy *exception state*. Every shift has a state in every copy, so
  "the exceptions of a copy" is simply that copy's states.
* **Etags.** Drawn from one counter and never reused: every edit of a copy
  gets a fresh one even if the content did not change. A generated
  occurrence derives its etag from its master's, so a series-level edit
  changes them all while a write to one occurrence (which turns it into an
  exception) changes no other.
* **Change log.** Each calendar has a log of ``(sequence, event id)`` that
  every change of a copy appends to. A cursor names a sequence number (and
  an epoch, which ``expire_cursors`` bumps to invalidate all older ones).
  Incremental sync replays the log after the cursor, resolves each id to the
  copy's current state, and reports ids that no longer resolve as removed.
  Because ids are never reused this is exact, and like Google it ignores the
  window. A full sync lists what overlaps the window instead.

Every protocol call is recorded in ``requests`` (successful writes also in
``writes``) and can be made to fail through ``faults``. The whole world saves
to JSON and loads back exactly, so ``syncd sync-once`` can run against a file.
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from providers.base import (
    CursorExpired,
    NotFound,
    NotWritable,
    PreconditionFailed,
    ProviderError,
)
from syncd.model import Attendee, ChangePage, Event, EventType, Response, Window, utc

__all__ = ["OPS", "Faults", "MemoryProvider", "Recurrence", "Request"]

OPS = frozenset({"calendars", "changes", "instances", "get", "update_description"})
"""The protocol operations, as recorded in ``Request.op`` and accepted by ``Faults.fail``."""

_STAMP = "%Y%m%dT%H%M%SZ"
_CURSOR_PREFIX = "m1"
_FILE_FORMAT = "syncd-memory-provider"
_FILE_VERSION = 1

_T = TypeVar("_T")


@dataclass(frozen=True)
class Recurrence:
    """A series every ``interval_days`` days, bounded by ``count`` and/or ``until``.

    Days are counted in UTC, so there is no daylight-saving drift to model;
    that is a concern of the real providers' recurrence rules, not of the
    engine, which only ever sees expanded occurrences. ``until`` is inclusive
    like RRULE's UNTIL.
    """

    interval_days: int = 7
    count: int | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.interval_days < 1:
            raise ValueError("interval_days must be at least 1")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1")
        if self.until is not None:
            object.__setattr__(self, "until", utc(self.until))

    @property
    def step(self) -> timedelta:
        return timedelta(days=self.interval_days)


@dataclass(frozen=True)
class Request:
    """One protocol call as the server would have seen it, for tests to assert on.

    ``outcome`` is ``"ok"`` or the class name of the error raised. A paged
    ``changes`` call is one request per page (``page`` counts from 0), as a
    real client sends one HTTP request per page.
    """

    op: str
    calendar: str | None = None
    event_id: str | None = None
    cursor: str | None = None
    etag: str | None = None
    outcome: str = "ok"
    page: int = 0
    description: str | None = None
    tag: str | None = None


@dataclass
class _Failure:
    error: ProviderError
    remaining: int


class Faults:
    """Scripted failures, so tests can drive the engine through every error path."""

    def __init__(self, provider: MemoryProvider) -> None:
        self._provider = provider
        self._failures: dict[str, list[_Failure]] = {}
        self._hook: Callable[[str, str], None] | None = None
        self._hook_left: int | None = None

    def fail(self, op: str, error: ProviderError, times: int = 1) -> None:
        """Make the next ``times`` calls of ``op`` raise ``error`` (queued after earlier ones)."""
        if op not in OPS:
            raise ValueError(f"unknown operation {op!r}; expected one of {sorted(OPS)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        self._failures.setdefault(op, []).append(_Failure(error, times))

    def before_write(
        self, callback: Callable[[str, str], None] | None, *, times: int | None = None
    ) -> None:
        """Call ``callback(calendar, event_id)`` at the start of every ``update_description``.

        It runs before the etag check, which is the window in which a person
        can edit the event after the engine read it. ``times`` limits how many
        writes it sees (``None``: until replaced); ``None`` as callback clears it.
        """
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        self._hook = callback
        self._hook_left = times if callback is not None else None

    def expire_cursors(self, calendar: str) -> None:
        """Invalidate every cursor issued so far for ``calendar`` (Google 410)."""
        self._provider.expire_cursors(calendar)

    def clear(self) -> None:
        """Drop pending failures and the write hook."""
        self._failures.clear()
        self._hook = None
        self._hook_left = None

    def _inject(self, op: str) -> None:
        queue = self._failures.get(op)
        if not queue:
            return
        failure = queue[0]
        failure.remaining -= 1
        if failure.remaining == 0:
            queue.pop(0)
        raise failure.error

    def _before_write(self, calendar: str, event_id: str) -> None:
        hook = self._hook
        if hook is None:
            return
        if self._hook_left is not None:
            self._hook_left -= 1
            if self._hook_left == 0:
                self._hook = None
                self._hook_left = None
        hook(calendar, event_id)


@dataclass
class _State:
    """What one calendar's copy says about one event or one occurrence.

    ``description`` is ``None`` only for an occurrence that still shows its
    master's description (it became an exception through a move or
    cancellation, not through an edit of its own).
    """

    etag: str
    description: str | None
    tag: str | None = None


@dataclass
class _Copy:
    id: str
    main: _State
    occurrences: dict[datetime, _State] = field(default_factory=dict)


@dataclass
class _Shift:
    """The organizer moved or cancelled one occurrence; the same in every copy."""

    start: datetime
    end: datetime
    cancelled: bool = False


@dataclass
class _Item:
    """One event or series as its organizer defined it, with every calendar's copy."""

    ical_uid: str
    organizer: str
    attendees: tuple[Attendee, ...]
    title: str
    start: datetime
    end: datetime
    description: str
    html: bool
    all_day: bool
    event_type: EventType
    recurrence: Recurrence | None
    shifts: dict[datetime, _Shift] = field(default_factory=dict)
    copies: dict[str, _Copy] = field(default_factory=dict)

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


@dataclass
class _Calendar:
    address: str
    epoch: int = 0
    seq: int = 0
    log: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Hit:
    """A resolved event id: the item, whose copy, and which occurrence (None: the item)."""

    item: _Item
    calendar: str
    copy: _Copy
    original_start: datetime | None


class MemoryProvider:
    """Many people's calendars in one process; satisfies ``providers.base.Provider``."""

    name = "memory"

    def __init__(self, calendars: Iterable[str] = (), *, page_size: int = 50) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.page_size = page_size
        self.requests: list[Request] = []
        self.writes: list[Request] = []
        self.faults = Faults(self)
        self._counter = 0
        self._calendars: dict[str, _Calendar] = {}
        self._folded: dict[str, str] = {}
        self._items: dict[str, _Item] = {}
        self._ids: dict[str, tuple[str, str]] = {}
        for address in calendars:
            self.add_calendar(address)

    # ------------------------------------------------------------------ protocol

    def calendars(self) -> list[str]:
        return self._record(Request("calendars"), lambda: list(self._calendars))

    def changes(self, calendar: str, cursor: str | None, window: Window) -> Iterator[ChangePage]:
        # The first request takes a snapshot, as a server pins a listing to
        # its page tokens; later pages are still separate requests that can fail.
        pages = self._record(
            Request("changes", calendar=calendar, cursor=cursor),
            lambda: self._change_pages(calendar, cursor, window),
        )
        yield pages[0]
        for number in range(1, len(pages)):
            yield self._serve_page(Request("changes", calendar, cursor=cursor, page=number), pages)

    def instances(self, calendar: str, series_id: str, window: Window) -> list[Event]:
        return self._record(
            Request("instances", calendar, event_id=series_id),
            lambda: self._instances(calendar, series_id, window),
        )

    def get(self, calendar: str, event_id: str) -> Event:
        return self._record(
            Request("get", calendar, event_id=event_id),
            lambda: self._event(self._find(calendar, event_id)),
        )

    def update_description(
        self, calendar: str, event_id: str, description: str, etag: str, tag: str | None
    ) -> Event:
        """Conditional write of the organizer's copy, propagated to attendees' copies.

        ``tag=None`` leaves the stored tag alone, as a PATCH without
        extendedProperties would.
        """
        request = Request(
            "update_description",
            calendar,
            event_id=event_id,
            etag=etag,
            description=description,
            tag=tag,
        )
        written = self._record(
            request, lambda: self._update_description(calendar, event_id, description, etag, tag)
        )
        self.writes.append(request)
        return written

    # ------------------------------------------------------------ world-building

    def add_calendar(self, address: str) -> None:
        """Hold ``address``'s calendar, with copies of what it was already invited to."""
        if address.casefold() in self._folded:
            return
        self._calendars[address] = _Calendar(address)
        self._folded[address.casefold()] = address
        for item in self._items.values():
            if address in self._holders(item):
                self._add_copy(item, address)

    def create_event(
        self,
        organizer: str,
        attendees: Sequence[str | Attendee],
        title: str,
        start: datetime,
        end: datetime,
        *,
        description: str = "",
        html: bool = False,
        all_day: bool = False,
        event_type: EventType = EventType.DEFAULT,
        recurrence: Recurrence | None = None,
        ical_uid: str | None = None,
    ) -> str:
        """Create an event (a series if ``recurrence``) as the organizer; returns its iCalUID."""
        start, end = utc(start), utc(end)
        if end <= start:
            raise ValueError("an event must end after it starts")
        uid = ical_uid if ical_uid is not None else f"uid{self._next():08d}@memory.invalid"
        if uid in self._items:
            raise ValueError(f"iCalUID {uid!r} already exists")
        item = _Item(
            ical_uid=uid,
            organizer=organizer,
            attendees=_attendee_list(organizer, attendees),
            title=title,
            start=start,
            end=end,
            description=description,
            html=html,
            all_day=all_day,
            event_type=event_type,
            recurrence=recurrence,
        )
        self._items[uid] = item
        for calendar in self._holders(item):
            self._add_copy(item, calendar)
        return uid

    def copy_id(self, calendar: str, ical_uid: str, original_start: datetime | None = None) -> str:
        """The id of ``calendar``'s copy of an event, or of one occurrence of it."""
        item = self._item(ical_uid)
        copy = item.copies.get(self._address(calendar))
        if copy is None:
            raise KeyError(f"{calendar} holds no copy of {ical_uid}")
        if original_start is None:
            return copy.id
        moment = utc(original_start)
        if not self._is_occurrence(item, moment):
            raise KeyError(f"{ical_uid} has no occurrence at {moment.isoformat()}")
        return _occurrence_id(copy.id, moment)

    def edit_description(self, calendar: str, event_id: str, description: str) -> None:
        """A person typing into their client: the organizer's edit reaches every copy."""
        hit = self._find(calendar, event_id)
        if self._is_organizer(hit.item, hit.calendar):
            self._describe_everywhere(hit.item, hit.original_start, description, tag=None)
        else:
            self._describe(hit.item, hit.calendar, hit.original_start, description, tag=None)

    def move_occurrence(
        self, ical_uid: str, original_start: datetime, new_start: datetime, new_end: datetime
    ) -> None:
        """The organizer reschedules one occurrence (or a single event at ``original_start``)."""
        item = self._item(ical_uid)
        moment, new_start, new_end = utc(original_start), utc(new_start), utc(new_end)
        if new_end <= new_start:
            raise ValueError("an event must end after it starts")
        if item.recurrence is None:
            if moment != item.start:
                raise KeyError(f"{ical_uid} does not start at {moment.isoformat()}")
            item.start, item.end = new_start, new_end
            self._touch_all(item)
            return
        self._require_occurrence(item, moment)
        shift = item.shifts.get(moment)
        if shift is not None and shift.cancelled:
            raise ValueError(f"occurrence {moment.isoformat()} of {ical_uid} is cancelled")
        item.shifts[moment] = _Shift(new_start, new_end)
        self._touch_occurrence(item, moment)

    def cancel_occurrence(self, ical_uid: str, original_start: datetime) -> None:
        """The organizer cancels one occurrence; cancelling a single event deletes it."""
        item = self._item(ical_uid)
        moment = utc(original_start)
        if item.recurrence is None:
            if moment != item.start:
                raise KeyError(f"{ical_uid} does not start at {moment.isoformat()}")
            self.delete_event(ical_uid)
            return
        self._require_occurrence(item, moment)
        shift = item.shifts.get(moment) or _Shift(moment, moment + item.duration)
        shift.cancelled = True
        item.shifts[moment] = shift
        self._touch_occurrence(item, moment)

    def delete_event(self, ical_uid: str) -> None:
        """The organizer deletes the event or whole series from every calendar."""
        item = self._item(ical_uid)
        for calendar in list(item.copies):
            self._remove_copy(item, calendar)
        del self._items[ical_uid]

    def update_event(
        self,
        ical_uid: str,
        *,
        title: str | None = None,
        attendees: Sequence[str | Attendee] | None = None,
    ) -> None:
        """A series-level (or single-event) edit; invitees gained or lost gain or lose copies."""
        item = self._item(ical_uid)
        if title is not None:
            item.title = title
        if attendees is not None:
            item.attendees = _attendee_list(item.organizer, attendees)
        holders = self._holders(item)
        for calendar in list(item.copies):
            if calendar not in holders:
                self._remove_copy(item, calendar)
        self._touch_all(item)
        for calendar in holders:
            if calendar not in item.copies:
                self._add_copy(item, calendar)

    def description(self, calendar: str, event_id: str) -> str:
        """Read a description without it counting as a protocol request."""
        return self._event(self._find(calendar, event_id)).description

    def expire_cursors(self, calendar: str) -> None:
        """Invalidate every cursor issued so far for ``calendar`` (Google 410)."""
        self._calendars[self._address(calendar)].epoch += 1

    # --------------------------------------------------------------- persistence

    def save(self, path: Path) -> None:
        """Write the whole world as JSON, atomically, so a crash never leaves half a file."""
        state = {
            "format": _FILE_FORMAT,
            "version": _FILE_VERSION,
            "page_size": self.page_size,
            "counter": self._counter,
            "calendars": [
                {
                    "address": cal.address,
                    "epoch": cal.epoch,
                    "seq": cal.seq,
                    "log": [[seq, event_id] for seq, event_id in cal.log],
                }
                for cal in self._calendars.values()
            ],
            "items": [_dump_item(item) for item in self._items.values()],
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(state, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> MemoryProvider:
        """Read a world written by ``save``; cursors issued before the save stay valid."""
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("format") != _FILE_FORMAT or state.get("version") != _FILE_VERSION:
            raise ValueError(f"{path} is not a version {_FILE_VERSION} memory provider file")
        provider = cls(page_size=int(state["page_size"]))
        provider._counter = int(state["counter"])
        for raw in state["calendars"]:
            cal = _Calendar(
                address=raw["address"],
                epoch=int(raw["epoch"]),
                seq=int(raw["seq"]),
                log=[(int(seq), str(event_id)) for seq, event_id in raw["log"]],
            )
            provider._calendars[cal.address] = cal
            provider._folded[cal.address.casefold()] = cal.address
        for raw in state["items"]:
            item = _load_item(raw)
            provider._items[item.ical_uid] = item
            for calendar, copy in item.copies.items():
                provider._ids[copy.id] = (item.ical_uid, calendar)
        return provider

    # ----------------------------------------------------------------- internals

    def _record(self, request: Request, call: Callable[[], _T]) -> _T:
        try:
            self.faults._inject(request.op)
            result = call()
        except Exception as exc:
            self.requests.append(replace(request, outcome=type(exc).__name__))
            raise
        self.requests.append(request)
        return result

    def _serve_page(self, request: Request, pages: list[ChangePage]) -> ChangePage:
        return self._record(request, lambda: pages[request.page])

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def _etag(self) -> str:
        return str(self._next())

    def _address(self, calendar: str) -> str:
        try:
            return self._folded[calendar.casefold()]
        except KeyError:
            raise NotFound(f"no calendar {calendar!r}") from None

    def _item(self, ical_uid: str) -> _Item:
        try:
            return self._items[ical_uid]
        except KeyError:
            raise KeyError(f"no event with iCalUID {ical_uid!r}") from None

    def _holders(self, item: _Item) -> list[str]:
        """Calendars that get a copy: the organizer's and invited people's that we hold."""
        wanted = [item.organizer] + [
            a.email for a in item.attendees if not (a.is_resource or a.is_group)
        ]
        holders: list[str] = []
        for email in wanted:
            address = self._folded.get(email.casefold())
            if address is not None and address not in holders:
                holders.append(address)
        return holders

    def _is_organizer(self, item: _Item, calendar: str) -> bool:
        return calendar.casefold() == item.organizer.casefold()

    def _log(self, calendar: str, event_id: str) -> None:
        cal = self._calendars[calendar]
        cal.seq += 1
        cal.log.append((cal.seq, event_id))

    def _add_copy(self, item: _Item, calendar: str) -> None:
        """A new copy starts as the organizer's invitation currently reads."""
        source = next(
            (c for cal, c in item.copies.items() if self._is_organizer(item, cal)),
            None,
        )
        copy = _Copy(id=f"ev{self._next():08d}", main=_State(self._etag(), item.description))
        self._ids[copy.id] = (item.ical_uid, calendar)
        item.copies[calendar] = copy
        self._log(calendar, copy.id)
        exceptions = set(item.shifts) | (set(source.occurrences) if source else set())
        for moment in sorted(exceptions):
            origin = source.occurrences.get(moment) if source else None
            copy.occurrences[moment] = _State(self._etag(), origin.description if origin else None)
            self._log(calendar, _occurrence_id(copy.id, moment))

    def _remove_copy(self, item: _Item, calendar: str) -> None:
        copy = item.copies.pop(calendar)
        del self._ids[copy.id]
        self._log(calendar, copy.id)
        for moment in copy.occurrences:
            self._log(calendar, _occurrence_id(copy.id, moment))

    def _touch_all(self, item: _Item) -> None:
        """A series-level edit changes every copy and every exception in it."""
        for calendar, copy in item.copies.items():
            copy.main.etag = self._etag()
            self._log(calendar, copy.id)
            for moment, state in copy.occurrences.items():
                state.etag = self._etag()
                self._log(calendar, _occurrence_id(copy.id, moment))

    def _touch_occurrence(self, item: _Item, moment: datetime) -> None:
        for calendar, copy in item.copies.items():
            state = copy.occurrences.get(moment)
            if state is None:
                copy.occurrences[moment] = _State(self._etag(), None)
            else:
                state.etag = self._etag()
            self._log(calendar, _occurrence_id(copy.id, moment))

    def _describe_everywhere(
        self, item: _Item, moment: datetime | None, description: str, tag: str | None
    ) -> None:
        """The organizer's edit: their copy first (with our tag), then each attendee's."""
        if moment is None:
            item.description = description
        for calendar in item.copies:
            mine = self._is_organizer(item, calendar)
            self._describe(item, calendar, moment, description, tag=tag if mine else None)

    def _describe(
        self,
        item: _Item,
        calendar: str,
        moment: datetime | None,
        description: str,
        tag: str | None,
    ) -> None:
        copy = item.copies[calendar]
        if moment is None:
            state = copy.main
            event_id = copy.id
        else:
            state = copy.occurrences.setdefault(moment, _State("", None))
            event_id = _occurrence_id(copy.id, moment)
        state.description = description
        state.etag = self._etag()
        if tag is not None:
            state.tag = tag
        self._log(calendar, event_id)
        if moment is None:
            # Exceptions that show the master's description have changed too.
            for other, inherited in copy.occurrences.items():
                if inherited.description is None:
                    inherited.etag = self._etag()
                    self._log(calendar, _occurrence_id(copy.id, other))

    def _update_description(
        self, calendar: str, event_id: str, description: str, etag: str, tag: str | None
    ) -> Event:
        self.faults._before_write(calendar, event_id)
        hit = self._find(calendar, event_id)
        if hit.original_start is None and hit.item.recurrence is not None:
            raise NotWritable(f"{event_id} is a series master; write its occurrences")
        if not self._is_organizer(hit.item, hit.calendar):
            raise NotWritable(f"{event_id} in {calendar} is not the organizer's copy")
        current = self._event(hit).etag
        if etag != current:
            raise PreconditionFailed(f"etag {etag!r} is stale; {event_id} is at {current!r}")
        self._describe_everywhere(hit.item, hit.original_start, description, tag)
        return self._event(self._find(calendar, event_id))

    def _find(self, calendar: str, event_id: str) -> _Hit:
        address = self._address(calendar)
        hit = self._lookup(address, event_id)
        if hit is None:
            raise NotFound(f"no event {event_id!r} in {calendar}")
        return hit

    def _lookup(self, calendar: str, event_id: str) -> _Hit | None:
        """Resolve a master, single or occurrence id in one calendar; None if it is gone."""
        found = self._ids.get(event_id)
        if found is not None:
            uid, holder = found
            if holder != calendar:
                return None
            item = self._items[uid]
            return _Hit(item, calendar, item.copies[calendar], None)
        master_id, sep, stamp = event_id.rpartition("_")
        found = self._ids.get(master_id)
        if not sep or found is None or found[1] != calendar:
            return None
        item = self._items[found[0]]
        try:
            moment = datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC)
        except ValueError:
            return None
        if item.recurrence is None or not self._is_occurrence(item, moment):
            return None
        return _Hit(item, calendar, item.copies[calendar], moment)

    def _is_occurrence(self, item: _Item, moment: datetime) -> bool:
        rule = item.recurrence
        if rule is None or moment < item.start:
            return False
        index, rest = divmod(moment - item.start, rule.step)
        if rest:
            return False
        if rule.count is not None and index >= rule.count:
            return False
        return rule.until is None or moment <= rule.until

    def _require_occurrence(self, item: _Item, moment: datetime) -> None:
        if not self._is_occurrence(item, moment):
            raise KeyError(f"{item.ical_uid} has no occurrence at {moment.isoformat()}")

    def _originals(self, item: _Item, window: Window) -> Iterator[datetime]:
        """Original starts of the occurrences whose original slot overlaps ``window``."""
        rule = item.recurrence
        if rule is None:
            return
        index = max(0, (window.start - item.duration - item.start) // rule.step)
        while True:
            moment = item.start + index * rule.step
            if moment >= window.end:
                return
            if rule.count is not None and index >= rule.count:
                return
            if rule.until is not None and moment > rule.until:
                return
            if moment + item.duration > window.start:
                yield moment
            index += 1

    def _slot(self, item: _Item, moment: datetime) -> _Shift:
        return item.shifts.get(moment) or _Shift(moment, moment + item.duration)

    def _occurrence_shows(self, item: _Item, moment: datetime, window: Window) -> bool:
        """Where an occurrence is now decides; a cancelled one also counts where it was."""
        slot = self._slot(item, moment)
        if window.overlaps(slot.start, slot.end):
            return True
        return slot.cancelled and window.overlaps(moment, moment + item.duration)

    def _event(self, hit: _Hit) -> Event:
        item, copy, moment = hit.item, hit.copy, hit.original_start
        common: dict[str, Any] = {
            "calendar_id": hit.calendar,
            "ical_uid": item.ical_uid,
            "title": item.title,
            "organizer": item.organizer,
            "attendees": item.attendees,
            "description_is_html": item.html,
            "all_day": item.all_day,
            "event_type": item.event_type,
            "is_organizer_copy": self._is_organizer(item, hit.calendar),
        }
        if moment is None:
            return Event(
                id=copy.id,
                start=item.start,
                end=item.end,
                description=copy.main.description or "",
                recurring=item.recurrence is not None,
                etag=copy.main.etag,
                tag=copy.main.tag,
                **common,
            )
        slot = self._slot(item, moment)
        state = copy.occurrences.get(moment)
        own = state.description if state is not None else None
        return Event(
            id=_occurrence_id(copy.id, moment),
            start=slot.start,
            end=slot.end,
            description=own if own is not None else copy.main.description or "",
            cancelled=slot.cancelled,
            series_id=copy.id,
            original_start=moment,
            etag=state.etag if state is not None else f"{copy.main.etag}-{moment:{_STAMP}}",
            tag=state.tag if state is not None else None,
            **common,
        )

    def _instances(self, calendar: str, series_id: str, window: Window) -> list[Event]:
        hit = self._find(calendar, series_id)
        item = hit.item
        if hit.original_start is not None or item.recurrence is None:
            raise NotFound(f"{series_id} is not a series master")
        candidates = set(self._originals(item, window)) | set(item.shifts)
        events = [
            self._event(replace(hit, original_start=moment))
            for moment in candidates
            if self._occurrence_shows(item, moment, window)
        ]
        return sorted(events, key=lambda e: (e.start, e.original_start or e.start))

    def _full_sync(self, calendar: str, window: Window) -> list[Event]:
        events: list[Event] = []
        for item in self._items.values():
            copy = item.copies.get(calendar)
            if copy is None:
                continue
            hit = _Hit(item, calendar, copy, None)
            if item.recurrence is None:
                if window.overlaps(item.start, item.end):
                    events.append(self._event(hit))
                continue
            shown = [m for m in copy.occurrences if self._occurrence_shows(item, m, window)]
            if shown or next(self._originals(item, window), None) is not None:
                events.append(self._event(hit))
            events.extend(self._event(replace(hit, original_start=m)) for m in shown)
        return sorted(events, key=lambda e: (e.start, e.id))

    def _change_pages(self, calendar: str, cursor: str | None, window: Window) -> list[ChangePage]:
        address = self._address(calendar)
        cal = self._calendars[address]
        entries: list[Event | str]
        if cursor is None:
            entries = list(self._full_sync(address, window))
        else:
            since = self._cursor_seq(cal, cursor)
            latest: dict[str, int] = {}
            start = bisect.bisect_right(cal.log, since, key=lambda entry: entry[0])
            for seq, event_id in cal.log[start:]:
                latest.pop(event_id, None)
                latest[event_id] = seq
            entries = []
            for event_id in latest:
                hit = self._lookup(address, event_id)
                entries.append(event_id if hit is None else self._event(hit))
        size = self.page_size
        chunks = [entries[i : i + size] for i in range(0, len(entries), size)] or [[]]
        pages = [
            ChangePage(
                events=tuple(e for e in chunk if isinstance(e, Event)),
                removed=tuple(e for e in chunk if isinstance(e, str)),
            )
            for chunk in chunks
        ]
        pages[-1] = replace(pages[-1], cursor=f"{_CURSOR_PREFIX}:{cal.epoch}:{cal.seq}")
        return pages

    def _cursor_seq(self, cal: _Calendar, cursor: str) -> int:
        prefix, _, rest = cursor.partition(":")
        epoch, _, seq = rest.partition(":")
        if prefix != _CURSOR_PREFIX or not epoch.isdigit() or not seq.isdigit():
            raise CursorExpired(f"malformed cursor {cursor!r}")
        if int(epoch) != cal.epoch or int(seq) > cal.seq:
            raise CursorExpired(f"cursor {cursor!r} is no longer valid for {cal.address}")
        return int(seq)


def _occurrence_id(master_id: str, original_start: datetime) -> str:
    return f"{master_id}_{original_start:{_STAMP}}"


def _attendee_list(organizer: str, people: Sequence[str | Attendee]) -> tuple[Attendee, ...]:
    """Every copy lists the same people, the organizer among them and flagged."""
    result: list[Attendee] = []
    seen: set[str] = set()
    for person in people:
        attendee = Attendee(person) if isinstance(person, str) else person
        folded = attendee.email.casefold()
        if folded in seen:
            continue
        seen.add(folded)
        is_organizer = folded == organizer.casefold()
        if is_organizer and attendee.response is Response.NEEDS_ACTION:
            attendee = replace(attendee, response=Response.ACCEPTED)
        result.append(replace(attendee, is_organizer=is_organizer))
    if organizer.casefold() not in seen:
        result.insert(0, Attendee(organizer, is_organizer=True, response=Response.ACCEPTED))
    return tuple(result)


def _dump_state(state: _State) -> dict[str, Any]:
    return {"etag": state.etag, "description": state.description, "tag": state.tag}


def _load_state(raw: dict[str, Any]) -> _State:
    return _State(etag=raw["etag"], description=raw["description"], tag=raw["tag"])


def _dump_attendee(attendee: Attendee) -> dict[str, Any]:
    return {
        "email": attendee.email,
        "name": attendee.name,
        "is_resource": attendee.is_resource,
        "is_group": attendee.is_group,
        "is_organizer": attendee.is_organizer,
        "response": attendee.response.value,
        "optional": attendee.optional,
    }


def _load_attendee(raw: dict[str, Any]) -> Attendee:
    return Attendee(
        email=raw["email"],
        name=raw["name"],
        is_resource=raw["is_resource"],
        is_group=raw["is_group"],
        is_organizer=raw["is_organizer"],
        response=Response(raw["response"]),
        optional=raw["optional"],
    )


def _time(raw: str) -> datetime:
    return utc(datetime.fromisoformat(raw))


def _dump_item(item: _Item) -> dict[str, Any]:
    rule = item.recurrence
    return {
        "ical_uid": item.ical_uid,
        "organizer": item.organizer,
        "attendees": [_dump_attendee(a) for a in item.attendees],
        "title": item.title,
        "start": item.start.isoformat(),
        "end": item.end.isoformat(),
        "description": item.description,
        "html": item.html,
        "all_day": item.all_day,
        "event_type": item.event_type.value,
        "recurrence": None
        if rule is None
        else {
            "interval_days": rule.interval_days,
            "count": rule.count,
            "until": None if rule.until is None else rule.until.isoformat(),
        },
        "shifts": [
            {
                "original_start": moment.isoformat(),
                "start": shift.start.isoformat(),
                "end": shift.end.isoformat(),
                "cancelled": shift.cancelled,
            }
            for moment, shift in item.shifts.items()
        ],
        "copies": [
            {
                "calendar": calendar,
                "id": copy.id,
                "main": _dump_state(copy.main),
                "occurrences": [
                    {"original_start": moment.isoformat(), **_dump_state(state)}
                    for moment, state in copy.occurrences.items()
                ],
            }
            for calendar, copy in item.copies.items()
        ],
    }


def _load_item(raw: dict[str, Any]) -> _Item:
    rule = raw["recurrence"]
    item = _Item(
        ical_uid=raw["ical_uid"],
        organizer=raw["organizer"],
        attendees=tuple(_load_attendee(a) for a in raw["attendees"]),
        title=raw["title"],
        start=_time(raw["start"]),
        end=_time(raw["end"]),
        description=raw["description"],
        html=raw["html"],
        all_day=raw["all_day"],
        event_type=EventType(raw["event_type"]),
        recurrence=None
        if rule is None
        else Recurrence(
            interval_days=rule["interval_days"],
            count=rule["count"],
            until=None if rule["until"] is None else _time(rule["until"]),
        ),
    )
    for shift in raw["shifts"]:
        item.shifts[_time(shift["original_start"])] = _Shift(
            _time(shift["start"]), _time(shift["end"]), shift["cancelled"]
        )
    for copy in raw["copies"]:
        loaded = _Copy(id=copy["id"], main=_load_state(copy["main"]))
        for occurrence in copy["occurrences"]:
            loaded.occurrences[_time(occurrence["original_start"])] = _load_state(occurrence)
        item.copies[copy["calendar"]] = loaded
    return item
