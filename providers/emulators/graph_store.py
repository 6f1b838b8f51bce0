"""The emulated mailboxes' state and every change to it, from people or from API writes.

One ``MailboxStore`` holds every mailbox behind one re-entrant lock (the
HTTP server is threaded and tests change the world from their own thread).
Every change of a copy, or of one occurrence in a copy, gets a fresh change
key (from one counter, never reused), a fresh ``lastModifiedDateTime``
(strictly increasing) and an entry in its mailbox's change log. When the
outermost change finishes, ``listener`` hears the list of (mailbox, event id,
change type) it made; change notifications hang off that.

Semantics chosen where the reference leaves room (see also graph.py):

* The organizer's body edits (a person's or a PATCH) reach every copy, each
  with a new change key; an attendee's edit, or PATCH of their own copy,
  stays in that copy. Extended properties belong to the copy written.
* A generated occurrence shows its master's change key, so a series-level
  edit changes all of them; writing one occurrence makes it an exception with
  a change key of its own and touches neither the master nor its siblings.
* ``cancel_occurrence`` deletes the occurrence from the organizer's calendar
  (``GET`` 404, gone from ``instances``, ``@removed`` in delta) and marks it
  ``isCancelled`` in attendees' calendars, as Exchange does with a
  cancellation; ``delete_event`` removes every copy.
"""

from __future__ import annotations

import base64
import copy as copying
import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from providers.memory import Recurrence
from syncd.model import Attendee, EventType, Response, utc

from . import graph_body
from .graph_errors import GraphError
from .graph_model import (
    Copy,
    Item,
    Mailbox,
    Shift,
    State,
    Tombstone,
    copy_id,
    external_uid_data,
    global_object_id,
    is_occurrence,
    mailbox_key,
    occurrence_id,
    parse_occurrence_id,
)

__all__ = ["Change", "Hit", "MailboxStore", "etag_of"]

_CHANGE_KEY_PREFIX = b"\x0f\x00\x00\x00\x16\x00\x00\x00"
_USER_NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")


@dataclass(frozen=True)
class Hit:
    """A live event id resolved in one mailbox; ``moment`` None means master or single."""

    item: Item
    mailbox: str
    copy: Copy
    moment: datetime | None

    @property
    def state(self) -> State | None:
        """The copy's own state for this event (None: an occurrence that is not an exception)."""
        if self.moment is None:
            return self.copy.main
        return self.copy.occurrences.get(self.moment)

    @property
    def id(self) -> str:
        return self.copy.id if self.moment is None else occurrence_id(self.copy.id, self.moment)


@dataclass(frozen=True)
class Change:
    mailbox: str
    event_id: str
    change_type: str  # created | updated | deleted


def etag_of(hit: Hit) -> str:
    state = hit.state or hit.copy.main
    return f'W/"{state.change_key}"'


class _Clock:
    """Modification times that never repeat or go back, so ordering by them is exact."""

    def __init__(self) -> None:
        self._last = datetime(1970, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        moment = datetime.now(UTC)
        if moment <= self._last:
            moment = self._last + timedelta(microseconds=1)
        self._last = moment
        return moment


class MailboxStore:
    """Every emulated user's primary calendar."""

    def __init__(self, tenant: str) -> None:
        self.lock = threading.RLock()
        self.listener: Callable[[list[Change]], None] | None = None
        self._tenant = tenant
        self._clock = _Clock()
        self._counter = 0
        self._mailboxes: dict[str, Mailbox] = {}
        self._folded: dict[str, str] = {}
        self._items: dict[str, Item] = {}
        self._aliases: dict[str, str] = {}
        self._ids: dict[str, tuple[str, str]] = {}
        self._pending: list[Change] = []
        self._depth = 0

    # ---------------------------------------------------------------- mailboxes

    def add_mailbox(self, address: str) -> None:
        """Hold ``address``'s mailbox, with copies of what it was already invited to."""
        with self._mutation():
            if address.casefold() in self._folded:
                return
            user_id = str(uuid.uuid5(_USER_NAMESPACE, f"{self._tenant}/{address.casefold()}"))
            self._mailboxes[address] = Mailbox(address, user_id, mailbox_key(address))
            self._folded[address.casefold()] = address
            self._folded[user_id] = address
            for item in self._items.values():
                if address in self._holders(item):
                    self._add_copy(item, address)

    def mailbox(self, identifier: str) -> Mailbox | None:
        """A mailbox by address (any case) or directory id, as ``/users/{id}`` accepts."""
        address = self._folded.get(identifier.casefold())
        return None if address is None else self._mailboxes[address]

    def addresses(self) -> list[str]:
        with self.lock:
            return list(self._mailboxes)

    def set_disabled(self, address: str, disabled: bool) -> None:
        with self.lock:
            self._require_mailbox(address).disabled = disabled

    def expire(self, calendar: str) -> None:
        """Invalidate every delta token issued so far for ``calendar``."""
        with self.lock:
            self._require_mailbox(calendar).epoch += 1

    # ------------------------------------------------------------ world-building

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
        start, end = utc(start), utc(end)
        if end <= start:
            raise ValueError("an event must end after it starts")
        with self._mutation():
            created = self._clock.now()
            if ical_uid is not None:
                data = external_uid_data(ical_uid)
            else:
                data = hashlib.sha256(f"{self._tenant}/{self._next()}".encode()).digest()[:16]
            goid = global_object_id(created, data)
            uid = goid.hex().upper()
            if uid in self._items or (ical_uid is not None and ical_uid in self._aliases):
                raise ValueError(f"iCalUID {ical_uid or uid!r} already exists")
            item = Item(
                ical_uid=uid,
                goid=goid,
                organizer=organizer,
                attendees=_attendee_list(organizer, attendees),
                title=title,
                start=start,
                end=end,
                body=graph_body.from_person(description, is_html=html),
                html=html,
                all_day=all_day,
                event_type=event_type,
                recurrence=recurrence,
                created=created,
            )
            self._items[uid] = item
            if ical_uid is not None:
                self._aliases[ical_uid] = uid
            for mailbox in self._holders(item):
                self._add_copy(item, mailbox)
            return uid

    def copy_id(self, calendar: str, ical_uid: str, original_start: datetime | None = None) -> str:
        with self.lock:
            item = self._item(ical_uid)
            copy = item.copies.get(self._require_mailbox(calendar).address)
            if copy is None:
                raise KeyError(f"{calendar} holds no copy of {ical_uid}")
            if original_start is None:
                return copy.id
            moment = utc(original_start)
            self._require_occurrence(item, moment)
            return occurrence_id(copy.id, moment)

    def edit_description(self, calendar: str, event_id: str, description: str) -> None:
        """A person typing into Outlook: the organizer's edit reaches every copy."""
        with self._mutation():
            hit = self._require(calendar, event_id)
            body = graph_body.from_person(description, is_html=hit.item.html)
            if hit.item.is_organizer(hit.mailbox):
                self._write_everywhere(hit, body, {})
            else:
                self._write(hit.item, hit.mailbox, hit.moment, body=body)

    def move_occurrence(
        self, ical_uid: str, original_start: datetime, new_start: datetime, new_end: datetime
    ) -> None:
        moment, new_start, new_end = utc(original_start), utc(new_start), utc(new_end)
        if new_end <= new_start:
            raise ValueError("an event must end after it starts")
        with self._mutation():
            item = self._item(ical_uid)
            if item.recurrence is None:
                if moment != item.start:
                    raise KeyError(f"{ical_uid} does not start at {moment.isoformat()}")
                item.start, item.end = new_start, new_end
                self._touch_all(item)
                return
            self._require_occurrence(item, moment)
            if item.slot(moment).cancelled:
                raise ValueError(f"occurrence {moment.isoformat()} of {ical_uid} is cancelled")
            item.shifts[moment] = Shift(new_start, new_end)
            self._touch_occurrence(item, moment)

    def cancel_occurrence(self, ical_uid: str, original_start: datetime) -> None:
        """The organizer cancels one occurrence; cancelling a single event deletes it."""
        moment = utc(original_start)
        with self._mutation():
            item = self._item(ical_uid)
            if item.recurrence is None:
                if moment != item.start:
                    raise KeyError(f"{ical_uid} does not start at {moment.isoformat()}")
                self.delete_event(ical_uid)
                return
            self._require_occurrence(item, moment)
            item.shifts[moment] = replace(item.slot(moment), cancelled=True)
            self._touch_occurrence(item, moment)

    def delete_event(self, ical_uid: str) -> None:
        """The organizer deletes the event or whole series from every calendar."""
        with self._mutation():
            item = self._item(ical_uid)
            for mailbox in list(item.copies):
                self._remove_copy(item, mailbox)
            del self._items[item.ical_uid]

    def update_event(
        self,
        ical_uid: str,
        *,
        title: str | None = None,
        attendees: Sequence[str | Attendee] | None = None,
    ) -> None:
        """A series-level (or single-event) edit; invitees gained or lost gain or lose copies."""
        with self._mutation():
            item = self._item(ical_uid)
            if title is not None:
                item.title = title
            if attendees is not None:
                item.attendees = _attendee_list(item.organizer, attendees)
            holders = self._holders(item)
            for mailbox in list(item.copies):
                if mailbox not in holders:
                    self._remove_copy(item, mailbox)
            self._touch_all(item)
            for mailbox in holders:
                if mailbox not in item.copies:
                    self._add_copy(item, mailbox)

    def body(self, hit: Hit) -> str:
        """The HTML body this copy shows for the event (an occurrence may show the master's)."""
        state = hit.state
        if state is not None and state.body is not None:
            return state.body
        return hit.copy.main.body or ""

    def description(self, calendar: str, event_id: str) -> str:
        with self.lock:
            return self.body(self._require(calendar, event_id))

    # ---------------------------------------------------------------------- API

    def resolve(self, mailbox: str, event_id: str) -> Hit | None:
        """A visible event (master, single, occurrence or exception) by id in one mailbox."""
        found = self._ids.get(event_id)
        if found is not None:
            uid, holder = found
            if holder != mailbox:
                return None
            item = self._items[uid]
            return Hit(item, mailbox, item.copies[mailbox], None)
        parsed = parse_occurrence_id(event_id)
        if parsed is None:
            return None
        master = self.resolve(mailbox, parsed[0])
        moment = parsed[1]
        if master is None or not is_occurrence(master.item, moment):
            return None
        hit = replace(master, moment=moment)
        return hit if self.visible(hit) else None

    def visible(self, hit: Hit) -> bool:
        """A cancelled occurrence is gone from the organizer's calendar only."""
        if hit.moment is None or not hit.item.slot(hit.moment).cancelled:
            return True
        return not hit.item.is_organizer(hit.mailbox)

    def held(self, mailbox: str) -> Iterator[Hit]:
        """Masters and single events ``mailbox`` holds, oldest first (a stable order)."""
        for uid in list(self._mailboxes[mailbox].items):
            item = self._items[uid]
            yield Hit(item, mailbox, item.copies[mailbox], None)

    def tombstone(self, mailbox: str, event_id: str) -> Tombstone | None:
        return self._mailboxes[mailbox].tombstones.get(event_id)

    def patch(
        self,
        mailbox: str,
        event_id: str,
        body: str | None,
        props: dict[str, tuple[str, str]],
        if_match: str | None,
    ) -> Hit:
        """A PATCH of one copy: 404, then the change key (412), then the write.

        ``body`` is already in the form Exchange keeps (None: not written).
        """
        with self._mutation():
            hit = self.resolve(mailbox, event_id)
            if hit is None:
                raise GraphError(404, "ErrorItemNotFound")
            if if_match is not None and not _etag_matches(if_match, etag_of(hit)):
                raise GraphError(412, "ErrorIrresolvableConflict")
            if body is not None and hit.item.is_organizer(mailbox):
                self._write_everywhere(hit, body, props)
            else:
                self._write(hit.item, mailbox, hit.moment, body=body, props=props)
            written = self.resolve(mailbox, event_id)
            assert written is not None
            return written

    # ---------------------------------------------------------------- internals

    @contextmanager
    def _mutation(self) -> Iterator[None]:
        """Hold the lock; when the outermost change ends, tell the listener what changed."""
        with self.lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    changes, self._pending = self._pending, []
                    if self.listener is not None and changes:
                        self.listener(_merge(changes))

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def _fresh(self, mailbox: str, body: str | None) -> State:
        return State(self._change_key(mailbox), self._clock.now(), body)

    def _change_key(self, mailbox: str) -> str:
        raw = _CHANGE_KEY_PREFIX + self._mailboxes[mailbox].key + self._next().to_bytes(14, "big")
        return base64.b64encode(raw).decode("ascii")

    def _retag(self, mailbox: str, state: State) -> None:
        state.change_key = self._change_key(mailbox)
        state.modified = self._clock.now()

    def _require_mailbox(self, calendar: str) -> Mailbox:
        mailbox = self.mailbox(calendar)
        if mailbox is None:
            raise KeyError(f"no mailbox {calendar!r}")
        return mailbox

    def _require(self, calendar: str, event_id: str) -> Hit:
        hit = self.resolve(self._require_mailbox(calendar).address, event_id)
        if hit is None:
            raise KeyError(f"no event {event_id!r} in {calendar}")
        return hit

    def _item(self, ical_uid: str) -> Item:
        item = self._items.get(ical_uid) or self._items.get(self._aliases.get(ical_uid, ""))
        if item is None:
            raise KeyError(f"no event with iCalUID {ical_uid!r}")
        return item

    def _require_occurrence(self, item: Item, moment: datetime) -> None:
        if not is_occurrence(item, moment):
            raise KeyError(f"{item.ical_uid} has no occurrence at {moment.isoformat()}")

    def _holders(self, item: Item) -> list[str]:
        """Mailboxes that get a copy: the organizer's and invited people's that we hold."""
        wanted = [item.organizer] + [
            a.email for a in item.attendees if not (a.is_resource or a.is_group)
        ]
        holders: list[str] = []
        for email in wanted:
            mailbox = self.mailbox(email)
            if mailbox is not None and mailbox.address not in holders:
                holders.append(mailbox.address)
        return holders

    def _log(self, mailbox: str, event_id: str, change_type: str = "updated") -> None:
        box = self._mailboxes[mailbox]
        box.seq += 1
        box.log.append((box.seq, event_id))
        self._pending.append(Change(mailbox, event_id, change_type))

    def _add_copy(self, item: Item, mailbox: str) -> None:
        """A new copy reads as the organizer's invitation currently does."""
        source = next((c for box, c in item.copies.items() if item.is_organizer(box)), None)
        copy = Copy(
            id=copy_id(self._mailboxes[mailbox].key, self._next()),
            mailbox=mailbox,
            created=self._clock.now(),
            main=self._fresh(mailbox, source.main.body if source else item.body),
        )
        item.copies[mailbox] = copy
        self._ids[copy.id] = (item.ical_uid, mailbox)
        self._mailboxes[mailbox].items[item.ical_uid] = None
        for moment in sorted(set(item.shifts) | (set(source.occurrences) if source else set())):
            origin = source.occurrences.get(moment) if source else None
            copy.occurrences[moment] = self._fresh(mailbox, origin.body if origin else None)
        self._log(mailbox, copy.id, "created")

    def _remove_copy(self, item: Item, mailbox: str) -> None:
        copy = item.copies.pop(mailbox)
        del self._ids[copy.id]
        self._mailboxes[mailbox].items.pop(item.ical_uid, None)
        snapshot = replace(item, shifts=dict(item.shifts), copies={})
        self._mailboxes[mailbox].tombstones[copy.id] = Tombstone(snapshot, copying.deepcopy(copy))
        self._log(mailbox, copy.id, "deleted")

    def _touch_all(self, item: Item) -> None:
        """A series-level edit changes every copy and every exception in it."""
        for mailbox, copy in item.copies.items():
            self._retag(mailbox, copy.main)
            for state in copy.occurrences.values():
                self._retag(mailbox, state)
            self._log(mailbox, copy.id)

    def _touch_occurrence(self, item: Item, moment: datetime) -> None:
        """The organizer moved or cancelled one occurrence: an exception in every copy."""
        cancelled = item.slot(moment).cancelled
        for mailbox, copy in item.copies.items():
            state = copy.occurrences.get(moment)
            if state is None:
                copy.occurrences[moment] = self._fresh(mailbox, None)
            else:
                self._retag(mailbox, state)
            gone = cancelled and item.is_organizer(mailbox)
            self._log(mailbox, occurrence_id(copy.id, moment), "deleted" if gone else "updated")

    def _write_everywhere(self, hit: Hit, body: str, props: dict[str, tuple[str, str]]) -> None:
        """The organizer's body reaches every copy; ``props`` stay in their own."""
        if hit.moment is None:
            hit.item.body = body
        for mailbox in hit.item.copies:
            mine = props if mailbox == hit.mailbox else {}
            self._write(hit.item, mailbox, hit.moment, body=body, props=mine)

    def _write(
        self,
        item: Item,
        mailbox: str,
        moment: datetime | None,
        *,
        body: str | None = None,
        props: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        """Change one copy (or one occurrence of it, which becomes an exception)."""
        copy = item.copies[mailbox]
        if moment is None:
            state = copy.main
            event_id = copy.id
        else:
            state = copy.occurrences.setdefault(moment, self._fresh(mailbox, None))
            event_id = occurrence_id(copy.id, moment)
        if body is not None:
            state.body = body
        if props:
            state.props.update(props)
        self._retag(mailbox, state)
        self._log(mailbox, event_id)
        if moment is None and body is not None:
            # Exceptions that show the master's body have changed with it.
            for exception in copy.occurrences.values():
                if exception.body is None:
                    self._retag(mailbox, exception)


def _etag_matches(if_match: str, current: str) -> bool:
    """``*``, the weak etag as Graph returns it, or the same change key quoted strongly."""
    wanted = [value.strip() for value in if_match.split(",")]
    bare = current.removeprefix("W/")
    return any(value in ("*", current, bare) for value in wanted)


def _merge(changes: list[Change]) -> list[Change]:
    """One change per (mailbox, id): created then edited is created, then deleted is deleted."""
    merged: dict[tuple[str, str], Change] = {}
    for change in changes:
        key = (change.mailbox, change.event_id)
        earlier = merged.pop(key, None)
        created = earlier is not None and earlier.change_type == "created"
        if created and earlier is not None and change.change_type != "deleted":
            change = earlier
        merged[key] = change
    return list(merged.values())


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
