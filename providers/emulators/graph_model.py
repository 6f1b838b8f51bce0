"""The emulated Exchange mailboxes as plain data, and their identifiers.

Items, copies, shifts and the recurrence arithmetic are
``providers.calendar_model``; this module adds what Exchange keeps on top:

* Every mailbox that holds an ``Item`` has a ``Copy`` with its *own* event id
  (unlike Google), its own change key and extended properties and, because
  an attendee may type into their copy, its own body (``description``, kept
  as Outlook stores it: HTML). All copies share the iCalUId.
* An occurrence of a series has state of its own only once it became an
  exception (moved, cancelled or written) in that copy; the others are
  generated from the master on demand and carry the master's change key, as
  Graph shows them.

Identifiers look like Exchange's and are opaque to clients, but the emulator
can read them back: a copy id is ``AAMkA`` + URL-safe base64 of a kind byte,
the mailbox key and a counter; an occurrence id is ``AAMkA`` + base64 of the
master id and the original start. The iCalUId is a hex PidLidGlobalObjectId
(MS-OXOCAL 2.2.1.27): the master's has a zero instance date, each occurrence's
carries its original start date, so it differs per occurrence as Graph's does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from providers.calendar_model import Calendar as _Log
from providers.calendar_model import Copy as _Copy
from providers.calendar_model import Item as _Item
from providers.calendar_model import Shift, is_occurrence, originals
from providers.calendar_model import State as _State

__all__ = [
    "Copy",
    "Item",
    "Mailbox",
    "Shift",
    "State",
    "Tombstone",
    "copy_id",
    "global_object_id",
    "is_occurrence",
    "occurrence_ical_uid",
    "occurrence_id",
    "originals",
    "parse_occurrence_id",
]

_ID_PREFIX = "AAMkA"
_KIND_COPY = 0x46
_KIND_OCCURRENCE = 0x51
_GOID_ARRAY_ID = bytes.fromhex("040000008200E00074C5B7101A82E008")
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


@dataclass(kw_only=True)
class State(_State):
    """One mailbox's version of an event, or of one occurrence of it.

    ``props`` maps a case-folded extended property id to (id as written, value).
    """

    change_key: str
    modified: datetime
    props: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(kw_only=True)
class Copy(_Copy[State]):
    id: str
    mailbox: str
    created: datetime


@dataclass(kw_only=True)
class Item(_Item[Copy]):
    goid: bytes
    html: bool
    created: datetime


@dataclass
class Tombstone:
    """What a mailbox remembers of a deleted copy, to report its occurrences as removed."""

    item: Item
    copy: Copy


@dataclass(kw_only=True)
class Mailbox(_Log):
    """One user: their address, directory id, change log and delta epoch.

    ``items`` names (by iCalUId, oldest first) the items this mailbox holds a
    copy of, so a full sync does not look through everyone's calendars.
    """

    user_id: str
    key: bytes
    items: dict[str, None] = field(default_factory=dict)
    tombstones: dict[str, Tombstone] = field(default_factory=dict)
    disabled: bool = False


# ------------------------------------------------------------------------ ids


def _encode(raw: bytes) -> str:
    return _ID_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii")


def _decode(event_id: str) -> bytes | None:
    if not event_id.startswith(_ID_PREFIX):
        return None
    try:
        return base64.urlsafe_b64decode(event_id[len(_ID_PREFIX) :].encode("ascii"))
    except (binascii.Error, ValueError):
        return None


def mailbox_key(address: str) -> bytes:
    """Eight bytes that name a mailbox inside its ids, stable across runs."""
    return hashlib.sha256(address.casefold().encode("utf-8")).digest()[:8]


def copy_id(key: bytes, number: int) -> str:
    return _encode(bytes([_KIND_COPY]) + key + number.to_bytes(8, "big") + b"\x00\x00")


def occurrence_id(master_id: str, original_start: datetime) -> str:
    raw = _decode(master_id)
    if raw is None:
        raise ValueError(f"not an emulator event id: {master_id!r}")
    seconds = int((original_start - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    return _encode(bytes([_KIND_OCCURRENCE]) + raw + struct.pack(">q", seconds))


def parse_occurrence_id(event_id: str) -> tuple[str, datetime] | None:
    """The master id and original start an occurrence id names; None for any other id."""
    raw = _decode(event_id)
    if raw is None or len(raw) < 9 or raw[0] != _KIND_OCCURRENCE:
        return None
    (seconds,) = struct.unpack(">q", raw[-8:])
    try:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    except OverflowError:
        return None
    return _encode(raw[1:-8]), moment


# -------------------------------------------------------------------- iCalUId


def global_object_id(created: datetime, data: bytes) -> bytes:
    """A PidLidGlobalObjectId with a zero instance date (a master or single event)."""
    ticks = int((created - _FILETIME_EPOCH).total_seconds() * 10_000_000)
    return (
        _GOID_ARRAY_ID
        + b"\x00\x00\x00\x00"
        + struct.pack("<Q", ticks)
        + b"\x00" * 8
        + struct.pack("<I", len(data))
        + data
    )


def external_uid_data(uid: str) -> bytes:
    """How Exchange wraps an iCalendar UID it did not generate (the ``vCal-Uid`` form)."""
    return b"vCal-Uid\x01\x00\x00\x00" + uid.encode("utf-8") + b"\x00"


def occurrence_ical_uid(goid: bytes, original_start: datetime) -> str:
    """The master's GlobalObjectId with the occurrence's date in its instance-date bytes."""
    day = original_start.astimezone(UTC).date()
    instance = bytes([day.year >> 8, day.year & 0xFF, day.month, day.day])
    return (goid[:16] + instance + goid[20:]).hex().upper()
