"""The emulated mailboxes' state and every change to it, from people or from API writes.

The model is ``providers.calendar_model``, its changes ``providers.calendar_world``;
this store adds
Exchange's bookkeeping. Every mailbox sits behind one re-entrant lock (the
HTTP server is threaded and tests change the world from their own thread).
Every change of a copy, or of one occurrence in a copy, gets a fresh change
key (from one counter, never reused) and a fresh ``lastModifiedDateTime``
(strictly increasing). The mailbox's change log names the copy for a change
of a series as a whole (delta expands it into its occurrences), or the one
occurrence written, moved or cancelled. When the outermost change finishes,
``listener`` hears the list of (mailbox, event id, change type) it made;
change notifications hang off that.

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
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from providers.calendar_model import Clock, Draft, Write
from providers.calendar_model import Hit as _Hit
from providers.calendar_world import CalendarWorld

from . import graph_body
from ._mail import Outbox
from .graph_errors import GraphError
from .graph_model import (
    Copy,
    Item,
    Mailbox,
    State,
    Tombstone,
    copy_id,
    external_uid_data,
    global_object_id,
    mailbox_key,
    occurrence_id,
    parse_occurrence_id,
)

__all__ = ["Change", "Hit", "MailboxStore", "etag_of"]

_CHANGE_KEY_PREFIX = b"\x0f\x00\x00\x00\x16\x00\x00\x00"
_USER_NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")

Props = dict[str, tuple[str, str]]
"""Extended properties a write sets (folded id -> (id as written, value)); they stay in its copy."""


@dataclass(frozen=True)
class Hit(_Hit[Item, Copy]):
    """A live event id resolved in one mailbox; ``moment`` None means master or single."""

    @property
    def mailbox(self) -> str:
        return self.calendar

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


class MailboxStore(CalendarWorld[Item, Copy, State, Props]):
    """Every emulated user's primary calendar."""

    def __init__(self, tenant: str) -> None:
        super().__init__()
        self.listener: Callable[[list[Change]], None] | None = None
        self._tenant = tenant
        self._clock = Clock(timedelta(microseconds=1))
        self._mailboxes: dict[str, Mailbox] = {}
        self._aliases: dict[str, str] = {}
        self._pending: list[Change] = []
        #: The meeting updates Exchange would have mailed (``_mail``).
        self.outbox = Outbox()

    # ---------------------------------------------------------------- mailboxes

    def add_mailbox(self, address: str) -> None:
        """Hold ``address``'s mailbox, with copies of what it was already invited to."""
        self.add_calendar(address)

    def mailbox(self, identifier: str) -> Mailbox | None:
        """A mailbox by address (any case) or directory id, as ``/users/{id}`` accepts."""
        address = self.address(identifier)
        return None if address is None else self._mailboxes[address]

    def addresses(self) -> list[str]:
        with self.lock:
            return list(self._mailboxes)

    def set_disabled(self, address: str, disabled: bool) -> None:
        with self.lock:
            self._mailboxes[self._address(address)].disabled = disabled

    def body(self, hit: Hit) -> str:
        """The HTML body this copy shows for the event (an occurrence may show the master's)."""
        state = hit.state
        if state is not None and state.description is not None:
            return state.description
        return hit.copy.main.description or ""

    def description(self, calendar: str, event_id: str) -> str:
        with self.lock:
            return self.body(self._as_hit(self._require(calendar, event_id)))

    # ---------------------------------------------------------------------- API

    def resolve(self, mailbox: str, event_id: str) -> Hit | None:
        """A visible event (master, single, occurrence or exception) by id in one mailbox."""
        found = self.find(mailbox, event_id)
        return None if found is None else self._as_hit(found)

    def visible(self, hit: Hit) -> bool:
        """A cancelled occurrence is gone from the organizer's calendar only."""
        return self._visible(hit)

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
        props: Props,
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
                self._write_everywhere(hit, Write(body, props))
                self._mail_attendees(hit)
            else:
                self._write(hit, Write(body, props))
            written = self.resolve(mailbox, event_id)
            assert written is not None
            return written

    def _mail_attendees(self, hit: Hit) -> None:
        """Exchange mails every attendee a meeting update when the organizer's meeting changes.

        Graph's event-update reference: an update of ``attendees`` alone mails
        only the attendees added or removed; any other change of the
        organizer's meeting (its body among them) is an update to all of
        them. An attendee's PATCH of their own copy stays in their copy. A
        PATCH of extended properties alone mails nobody here: the reference
        is silent on it, and syncd never sends one without the body.
        """
        self.outbox.meeting_update(
            organizer=hit.item.organizer,
            recipients=[attendee.email for attendee in hit.item.attendees],
            ical_uid=hit.item.ical_uid,
            occurrence=hit.moment,
            subject=hit.item.title,
            at=self._clock.now(),
        )

    # --------------------------------------------------------------- world hooks

    def _open_calendar(self, address: str) -> None:
        user_id = str(uuid.uuid5(_USER_NAMESPACE, f"{self._tenant}/{address.casefold()}"))
        self._mailboxes[address] = Mailbox(address, user_id=user_id, key=mailbox_key(address))
        self._folded[user_id] = address  # /users/{id} accepts the directory id too

    def _calendar(self, address: str) -> Mailbox:
        return self._mailboxes[address]

    def _item(self, ical_uid: str) -> Item:
        """An item by its iCalUId, or by the foreign UID it was created with."""
        item = self._items.get(ical_uid) or self._items.get(self._aliases.get(ical_uid, ""))
        if item is None:
            raise KeyError(f"no event with iCalUID {ical_uid!r}")
        return item

    def _new_item(self, draft: Draft) -> Item:
        created = self._clock.now()
        given = draft.ical_uid
        if given is not None:
            data = external_uid_data(given)
        else:
            data = hashlib.sha256(f"{self._tenant}/{self._next()}".encode()).digest()[:16]
        goid = global_object_id(created, data)
        uid = goid.hex().upper()
        if uid in self._items or (given is not None and given in self._aliases):
            raise ValueError(f"iCalUID {given or uid!r} already exists")
        if given is not None:
            self._aliases[given] = uid
        body = graph_body.from_person(draft.description, is_html=draft.html)
        fields = draft.item_fields(uid, body)
        return Item(**fields, goid=goid, html=draft.html, created=created)

    def _new_copy(self, item: Item, calendar: str, source: Copy | None) -> Copy:
        return Copy(
            id=copy_id(self._mailboxes[calendar].key, self._next()),
            mailbox=calendar,
            created=self._clock.now(),
            main=self._new_state(calendar, item.description),
        )

    def _new_state(self, calendar: str, description: str | None) -> State:
        return State(
            change_key=self._change_key(calendar),
            modified=self._clock.now(),
            description=description,
        )

    def _retag(self, calendar: str, state: State) -> None:
        state.change_key = self._change_key(calendar)
        state.modified = self._clock.now()

    def _master_id(self, item: Item, copy: Copy) -> str:
        return copy.id

    def _occurrence_id(self, item: Item, copy: Copy, moment: datetime) -> str:
        return occurrence_id(copy.id, moment)

    def _split_occurrence_id(self, event_id: str) -> tuple[str, datetime] | None:
        return parse_occurrence_id(event_id)

    def _changed(
        self, hit: _Hit[Item, Copy], *, created: bool = False, derived: bool = False
    ) -> None:
        """Log the copy, or the one occurrence changed on its own; delta expands a series."""
        if derived:
            return
        gone = not self._visible(hit)  # the organizer's cancelled occurrence
        kind = "created" if created else "deleted" if gone else "updated"
        self._log(hit.calendar, self.event_id(hit), kind)

    def _copy_added(self, item: Item, calendar: str) -> None:
        self._mailboxes[calendar].items[item.ical_uid] = None

    def _copy_removed(self, item: Item, calendar: str, copy: Copy) -> None:
        box = self._mailboxes[calendar]
        box.items.pop(item.ical_uid, None)
        snapshot = replace(item, shifts=dict(item.shifts), copies={})
        box.tombstones[copy.id] = Tombstone(snapshot, copying.deepcopy(copy))
        self._log(calendar, copy.id, "deleted")

    def _apply(self, state: State, extra: Props) -> None:
        state.props.update(extra)

    def _for_others(self, extra: Props) -> Props:
        return {}

    def _no_extra(self) -> Props:
        return {}

    def _follows_master(
        self, occurrence: _Hit[Item, Copy], state: State, write: Write[Props]
    ) -> bool:
        return write.description is not None and state.description is None

    def _visible(self, hit: _Hit[Item, Copy]) -> bool:
        if hit.moment is None or not hit.item.slot(hit.moment).cancelled:
            return True
        return not hit.item.is_organizer(hit.calendar)

    def _typed(self, item: Item, description: str) -> str:
        return graph_body.from_person(description, is_html=item.html)

    def _settled(self) -> None:
        changes, self._pending = self._pending, []
        if self.listener is not None and changes:
            self.listener(_merge(changes))

    def _unknown_calendar(self, calendar: str) -> Exception:
        return KeyError(f"no mailbox {calendar!r}")

    # ---------------------------------------------------------------- internals

    def _as_hit(self, found: _Hit[Item, Copy]) -> Hit:
        return Hit(found.item, found.calendar, found.copy, found.moment)

    def _change_key(self, mailbox: str) -> str:
        raw = _CHANGE_KEY_PREFIX + self._mailboxes[mailbox].key + self._next().to_bytes(14, "big")
        return base64.b64encode(raw).decode("ascii")

    def _log(self, mailbox: str, event_id: str, change_type: str = "updated") -> None:
        self._mailboxes[mailbox].record(event_id)
        self._pending.append(Change(mailbox, event_id, change_type))


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
