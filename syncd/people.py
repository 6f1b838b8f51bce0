"""Who people are: the names calendars and directories give them, and who manages whom.

An address is what syncd keys everything on; a person reads names. The
calendars already carry one with each attendee (Google's ``displayName``,
Graph's ``emailAddress.name``), and a directory may carry a better one and
the manager relation. Both land in ``people``, the directory's winning over
an invite's (anyone can type any name into an invite sent from outside).
Nothing here is needed to sync or to open an agenda: a person without a row
is shown by the first part of their address, as before.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from syncd.store.models import Person

#: Characters of a name kept: a name is a label, not a paragraph.
MAX_NAME = 120
CALENDAR, DIRECTORY = "calendar", "directory"


@dataclass(frozen=True, slots=True)
class Named:
    """What the pages know of one person."""

    address: str
    name: str  # "" when no calendar or directory named them
    manager: str | None = None

    @property
    def shown(self) -> str:
        return self.name or short(self.address)


def short(address: str) -> str:
    """The fallback: the local part of the address."""
    local = address.split("@", 1)[0]
    return local or address


def name_of(address: str, named: Mapping[str, Named] | None = None) -> str:
    """How a person is shown: by name where ``named`` knows one, else by ``short``."""
    known = named.get(address) if named else None
    return known.shown if known is not None else short(address)


def clean(name: str, address: str = "") -> str:
    """A name fit for one line of a page: no control or format characters, trimmed.

    A "name" that is only the address again says nothing, so it is no name.
    """
    kept = "".join(
        " " if char.isspace() else char
        for char in name
        if unicodedata.category(char) not in ("Cc", "Cf", "Cs")
    )
    tidy = " ".join(kept.split())[:MAX_NAME].strip()
    return "" if tidy.casefold() == address.casefold() else tidy


def remember(
    session: Session, names: Mapping[str, str], now: datetime, *, source: str = CALENDAR
) -> None:
    """Keep the names one calendar event or directory listing gave (address -> name).

    A calendar's name never replaces a directory's; an empty name replaces
    nothing.
    """
    wanted = {address: clean(name, address) for address, name in names.items()}
    wanted = {address: name for address, name in wanted.items() if name}
    if not wanted:
        return
    rows = _rows(session, wanted)
    for address, name in wanted.items():
        row = rows.get(address)
        if row is None:
            session.add(Person(address=address, name=name, source=source, updated_at=now))
        elif (source == DIRECTORY or row.source == CALENDAR) and (row.name, row.source) != (
            name,
            source,
        ):
            row.name, row.source, row.updated_at = name, source, now


def remember_managers(session: Session, managers: Mapping[str, str | None], now: datetime) -> None:
    """The directory's manager relation (person -> their manager's address, or None)."""
    rows = _rows(session, managers)
    for address, manager in managers.items():
        row = rows.get(address)
        if row is None:
            row = Person(address=address, name="", source=DIRECTORY, updated_at=now)
            session.add(row)
        if row.manager != manager:
            row.manager, row.updated_at = manager, now


def _rows(session: Session, addresses: Iterable[str]) -> dict[str, Person]:
    wanted = list(addresses)
    return {
        row.address: row
        for row in session.scalars(select(Person).where(Person.address.in_(wanted)))
    }


def lookup(session: Session, addresses: Iterable[str]) -> dict[str, Named]:
    """Everyone in ``addresses``, named as well as known (a missing row: by address)."""
    wanted = sorted(set(addresses))
    rows = _rows(session, wanted)
    named: dict[str, Named] = {}
    for address in wanted:
        row = rows.get(address)
        named[address] = Named(address, row.name, row.manager) if row else Named(address, "")
    return named


def manager_in(people: tuple[str, str], named: Mapping[str, Named]) -> str | None:
    """Which of the two manages the other, if the directory says so."""
    first, second = people
    of_first, of_second = named.get(first), named.get(second)
    if of_second is not None and of_second.manager == first:
        return first
    if of_first is not None and of_first.manager == second:
        return second
    return None
