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

The items, copies, shifts and their arithmetic are ``providers.calendar_model``
and every change to them ``providers.calendar_world``, both shared with the
emulators; this module adds the etags, the change log, the
``Event`` rendering and the protocol.

Every protocol call is recorded in ``requests`` (successful writes also in
``writes``) and can be made to fail through ``faults``. The whole world saves
to JSON and loads back exactly, so ``syncd sync-once`` can run against a file.
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, ValidationInfo, field_validator

from providers.base import (
    Account,
    CursorExpired,
    NotFound,
    NotWritable,
    PreconditionFailed,
    Prompt,
    ProviderError,
    Setup,
    SetupError,
    WebhookAnswer,
    WebhookRequest,
)
from providers.calendar_model import (
    STAMP,
    Calendar,
    Copy,
    Draft,
    Hit,
    Item,
    Recurrence,
    Shift,
    State,
    Write,
    originals,
    parse_stamped_id,
    stamped_id,
)
from providers.calendar_world import CalendarWorld
from providers.model import Attendee, ChangePage, Event, EventType, Response, Window, utc
from providers.options import AccountOptions, where

__all__ = ["OPS", "Faults", "MemoryProvider", "Recurrence", "Request"]

OPS = frozenset({"calendars", "changes", "instances", "get", "update_description"})
"""The protocol operations, as recorded in ``Request.op`` and accepted by ``Faults.fail``."""

_CURSOR_PREFIX = "m1"
_FILE_FORMAT = "syncd-memory-provider"
_FILE_VERSION = 1

_T = TypeVar("_T")


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


@dataclass(kw_only=True)
class _State(State):
    """What one calendar's copy says about one event or one occurrence.

    ``description`` is ``None`` only for an occurrence that still shows its
    master's description (it became an exception through a move or
    cancellation, not through an edit of its own).
    """

    etag: str
    tag: str | None = None


@dataclass(kw_only=True)
class _Copy(Copy[_State]):
    id: str


@dataclass(kw_only=True)
class _Item(Item[_Copy]):
    html: bool


_Hit = Hit[_Item, _Copy]


class MemoryProvider(CalendarWorld[_Item, _Copy, _State, str | None]):
    """Many people's calendars in one process; satisfies ``providers.base.Provider``.

    A write carries our tag (``str | None``, None: leave it) besides the
    description; the tag stays in the organizer's copy.
    """

    name = "memory"

    def __init__(
        self, calendars: Iterable[str] = (), *, page_size: int = 50, mails_attendees: bool = False
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        super().__init__()
        self.page_size = page_size
        #: Whether the engine should treat writes as mailed, as it does on Exchange.
        self.mails_attendees = mails_attendees
        self.requests: list[Request] = []
        self.writes: list[Request] = []
        self.faults = Faults(self)
        self._calendars: dict[str, Calendar] = {}
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
            lambda: self._event(self._require(calendar, event_id)),
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

    def description(self, calendar: str, event_id: str) -> str:
        """Read a description without it counting as a protocol request."""
        return self._event(self._require(calendar, event_id)).description

    def expire_cursors(self, calendar: str) -> None:
        """Invalidate every cursor issued so far for ``calendar`` (Google 410)."""
        self.expire(calendar)

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
            cal = Calendar(
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
            for copy in item.copies.values():
                provider._ids[copy.id] = item.ical_uid
        return provider

    # --------------------------------------------------------------- world hooks

    def _open_calendar(self, address: str) -> None:
        self._calendars[address] = Calendar(address)

    def _calendar(self, address: str) -> Calendar:
        return self._calendars[address]

    def _new_item(self, draft: Draft) -> _Item:
        uid = draft.ical_uid
        if uid is None:
            uid = f"uid{self._next():08d}@memory.invalid"
        if uid in self._items:
            raise ValueError(f"iCalUID {uid!r} already exists")
        return _Item(**draft.item_fields(uid, draft.description), html=draft.html)

    def _new_copy(self, item: _Item, calendar: str, source: _Copy | None) -> _Copy:
        copy_id = f"ev{self._next():08d}"
        return _Copy(id=copy_id, main=self._new_state(calendar, item.description))

    def _new_state(self, calendar: str, description: str | None) -> _State:
        return _State(etag=self._etag(), description=description)

    def _retag(self, calendar: str, state: _State) -> None:
        state.etag = self._etag()

    def _master_id(self, item: _Item, copy: _Copy) -> str:
        return copy.id

    def _occurrence_id(self, item: _Item, copy: _Copy, moment: datetime) -> str:
        return stamped_id(copy.id, moment)

    def _split_occurrence_id(self, event_id: str) -> tuple[str, datetime] | None:
        return parse_stamped_id(event_id)

    def _changed(self, hit: _Hit, *, created: bool = False, derived: bool = False) -> None:
        self._calendars[hit.calendar].record(self.event_id(hit))

    def _copy_removed(self, item: _Item, calendar: str, copy: _Copy) -> None:
        log = self._calendars[calendar]
        log.record(copy.id)
        for moment in copy.occurrences:
            log.record(stamped_id(copy.id, moment))

    def _apply(self, state: _State, extra: str | None) -> None:
        if extra is not None:
            state.tag = extra

    def _for_others(self, extra: str | None) -> str | None:
        return None

    def _no_extra(self) -> str | None:
        return None

    def _follows_master(self, occurrence: _Hit, state: _State, write: Write[str | None]) -> bool:
        return state.description is None

    def _unknown_calendar(self, calendar: str) -> Exception:
        return NotFound(f"no calendar {calendar!r}")

    def _unknown_event(self, calendar: str, event_id: str) -> Exception:
        return NotFound(f"no event {event_id!r} in {calendar}")

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

    def _etag(self) -> str:
        return str(self._next())

    def _update_description(
        self, calendar: str, event_id: str, description: str, etag: str, tag: str | None
    ) -> Event:
        self.faults._before_write(calendar, event_id)
        with self._mutation():
            hit = self._require(calendar, event_id)
            if hit.moment is None and hit.item.recurrence is not None:
                raise NotWritable(f"{event_id} is a series master; write its occurrences")
            if not hit.item.is_organizer(hit.calendar):
                raise NotWritable(f"{event_id} in {calendar} is not the organizer's copy")
            current = self._event(hit).etag
            if etag != current:
                raise PreconditionFailed(f"etag {etag!r} is stale; {event_id} is at {current!r}")
            self._write_everywhere(hit, Write(description, tag))
            return self._event(self._require(calendar, event_id))

    def _event(self, hit: _Hit) -> Event:
        item, copy, moment = hit.item, hit.copy, hit.moment
        common: dict[str, Any] = {
            "calendar_id": hit.calendar,
            "ical_uid": item.ical_uid,
            "title": item.title,
            "organizer": item.organizer,
            "attendees": item.attendees,
            "description_is_html": item.html,
            "all_day": item.all_day,
            "event_type": item.event_type,
            "is_organizer_copy": item.is_organizer(hit.calendar),
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
        slot = item.slot(moment)
        state = copy.occurrences.get(moment)
        own = state.description if state is not None else None
        return Event(
            id=stamped_id(copy.id, moment),
            start=slot.start,
            end=slot.end,
            description=own if own is not None else copy.main.description or "",
            cancelled=slot.cancelled,
            series_id=copy.id,
            original_start=moment,
            etag=state.etag if state is not None else f"{copy.main.etag}-{moment:{STAMP}}",
            tag=state.tag if state is not None else None,
            **common,
        )

    def _instances(self, calendar: str, series_id: str, window: Window) -> list[Event]:
        hit = self._require(calendar, series_id)
        item = hit.item
        if hit.moment is not None or item.recurrence is None:
            raise NotFound(f"{series_id} is not a series master")
        candidates = set(originals(item, window.start, window.end)) | set(item.shifts)
        events = [
            self._event(replace(hit, moment=moment))
            for moment in candidates
            if item.shows(moment, window.overlaps)
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
            shown = [m for m in copy.occurrences if item.shows(m, window.overlaps)]
            if shown or next(originals(item, window.start, window.end), None) is not None:
                events.append(self._event(hit))
            events.extend(self._event(replace(hit, moment=m)) for m in shown)
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
                hit = self.find(address, event_id)
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

    def _cursor_seq(self, cal: Calendar, cursor: str) -> int:
        prefix, _, rest = cursor.partition(":")
        epoch, _, seq = rest.partition(":")
        if prefix != _CURSOR_PREFIX or not epoch.isdigit() or not seq.isdigit():
            raise CursorExpired(f"malformed cursor {cursor!r}")
        if int(epoch) != cal.epoch or int(seq) > cal.seq:
            raise CursorExpired(f"cursor {cursor!r} is no longer valid for {cal.address}")
        return int(seq)


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
        item.shifts[_time(shift["original_start"])] = Shift(
            _time(shift["start"]), _time(shift["end"]), shift["cancelled"]
        )
    for copy in raw["copies"]:
        loaded = _Copy(id=copy["id"], main=_load_state(copy["main"]))
        for occurrence in copy["occurrences"]:
            loaded.occurrences[_time(occurrence["original_start"])] = _load_state(occurrence)
        item.copies[copy["calendar"]] = loaded
    return item


# --------------------------------------------------------------------------- plugin


class MemoryOptions(AccountOptions):
    """An in-process calendar: the demo's and the tests' provider, nothing to connect to."""

    state_file: str = Field(
        "", description="where the calendars are kept between runs; empty: lost at exit"
    )

    @field_validator("state_file")
    @classmethod
    def _state_file(cls, value: str, info: ValidationInfo) -> str:
        return str(where(info).folder / Path(value.strip()).expanduser()) if value.strip() else ""


class MemoryPlugin:
    name = "memory"
    options = MemoryOptions
    directory = False
    webhook_limit = 0
    #: A single in-process structure.
    concurrency = 1

    @contextmanager
    def connect(self, account: Account, setup: Setup) -> Iterator[MemoryProvider]:
        """The calendars from the state file (if any), saved back to it on the way out."""
        options = account.options
        assert isinstance(options, MemoryOptions)
        state = Path(options.state_file) if options.state_file else None
        if state is not None and state.exists():
            memory = MemoryProvider.load(state)
        else:
            memory = MemoryProvider(account.calendars, page_size=setup.page_size)
        for address in account.calendars:
            if address not in memory.calendars():
                memory.add_calendar(address)
        try:
            yield memory
        finally:
            if state is not None:
                memory.save(state)

    def authorize(self, account: Account, setup: Setup, say: Prompt) -> str:
        raise SetupError(f"{setup.where}.provider: memory accounts need no authorization")

    def webhook(self, request: WebhookRequest) -> WebhookAnswer:
        return WebhookAnswer(status=404)


plugin = MemoryPlugin()
