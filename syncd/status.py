"""``syncd status``: every calendar's sync health, read from the database alone.

An operator asks "is it working?" most often when something is already
wrong, perhaps with a provider down or a credential expired, so this reads
only the database: no provider call, no token refresh, nothing that could
hang or fail for the same reason the daemon does. It also never migrates:
looking at the state must not change it, and a database a newer or older
syncd migrated is reported in one line (exit status 2) rather than read
with the wrong columns.

A calendar is unhealthy (exit status 1) when it waits for re-authorisation,
which never clears by itself, or when its last ``ERROR_STREAK`` syncs in a
row failed: one failed sync is routine (a 503, a timeout) and the engine
retries it with backoff, but a streak means the retries are not helping.

"Next due" follows the scheduler's rules (``syncd.scheduler``): a mark or a
backoff (``next_sync_at``) decides alone; otherwise the calendar's own
jittered poll interval from its last sync (hours while a push channel is
healthy, ``max_poll`` while a live one missed a change), or the end of a 1:1
since the last sync, whichever is first.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session

from syncd import config, detect
from syncd.scheduler import Cadence, Push, next_due, push_states
from syncd.store import MIGRATIONS, connect, sessions, transaction
from syncd.store.models import Calendar, Occurrence, PushChannel

#: Failed syncs in a row after which a calendar counts as unhealthy.
ERROR_STREAK = 3
#: How much of the last error the table shows; ``--json`` has all of it.
ERROR_WIDTH = 60
#: Past due by more than this, a calendar is "overdue": the scheduler is
#: not running, or cannot keep up.
OVERDUE_AFTER = timedelta(minutes=1)


class Unavailable(Exception):
    """The database cannot be read as syncd's; ``str()`` is one line."""


@dataclass(frozen=True, slots=True)
class CalendarStatus:
    """One calendar's sync state as the database records it."""

    account: str
    provider: str
    calendar: str
    last_sync: datetime | None
    cursor_at: datetime | None
    #: The latest expiry among the calendar's push channels; ``None``: polling only.
    push_expires: datetime | None
    #: ``None`` while the calendar waits for re-authorisation (never due).
    next_due: datetime | None
    last_error: str | None
    error_count: int
    needs_reauth: bool
    #: The worker syncing it right now, if one holds a live lease.
    leased_by: str | None
    #: Upcoming events whose block another syncd installation wrote (left alone).
    other_installation: int = 0
    #: Whether its live channel is trusted to stretch the poll (``syncd.scheduler``).
    push: Push = Push.NONE

    @property
    def unhealthy(self) -> bool:
        return self.needs_reauth or self.error_count >= ERROR_STREAK

    def as_json(self) -> dict[str, Any]:
        def moment(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "account": self.account,
            "provider": self.provider,
            "calendar": self.calendar,
            "last_sync": moment(self.last_sync),
            "cursor_at": moment(self.cursor_at),
            "push_expires": moment(self.push_expires),
            "polling_only": self.push_expires is None,
            "push": self.push.value,
            "next_due": moment(self.next_due),
            "last_error": self.last_error,
            "error_count": self.error_count,
            "needs_reauth": self.needs_reauth,
            "leased_by": self.leased_by,
            "other_installation": self.other_installation,
            "unhealthy": self.unhealthy,
        }


# --------------------------------------------------------------------------- database


def database_label(url: str) -> str:
    """The database URL as it may be shown: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable URL)"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL, or ``None`` (other backends, in-memory, URIs)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    name = parsed.database or ""
    if not parsed.drivername.startswith("sqlite") or name in ("", ":memory:"):
        return None
    if name.startswith("file:"):
        return None
    return Path(name)


def database_error(error: Exception) -> str:
    """One line about a failed connection, without the SQL or a traceback."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        text = str(error.orig)
    else:
        text = str(error)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else 'no detail'}"


def schema_problem(engine: Engine) -> str | None:
    """Why this database's schema is not the one this syncd expects, if it is not.

    Compares the revision Alembic recorded in the database with the head of
    the migration scripts shipped with this code; it reads, never creates,
    the version table.
    """
    script = ScriptDirectory(str(MIGRATIONS))
    heads = set(script.get_heads())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    if current == heads:
        return None
    if not current:
        return "the database has no syncd schema yet; run `syncd migrate`"
    known = {revision.revision for revision in script.walk_revisions()}
    shown = ", ".join(sorted(current))
    if current - known:
        return (
            f"the database schema is at revision {shown}, which this syncd does not know "
            "(a newer syncd migrated it); upgrade syncd"
        )
    return (
        f"the database schema is at revision {shown}, behind {', '.join(sorted(heads))}; "
        "run `syncd migrate`"
    )


def open_database(settings: config.Settings) -> Engine:
    """An engine on a reachable database at the current schema, or ``Unavailable``."""
    url = settings.syncd.database
    label = database_label(url)
    file = sqlite_file(url)
    if file is not None and not file.exists():
        # Connecting would create an empty file; say what is missing instead.
        raise Unavailable(f"database {file} does not exist yet; run `syncd migrate`")
    try:
        engine = connect(url)
    except (ArgumentError, NoSuchModuleError, ImportError) as error:
        raise Unavailable(f"database {label}: {database_error(error)}") from None
    try:
        problem = schema_problem(engine)
    except SQLAlchemyError as error:
        engine.dispose()
        raise Unavailable(f"database {label}: {database_error(error)}") from None
    if problem is not None:
        engine.dispose()
        raise Unavailable(f"database {label}: {problem}")
    return engine


# --------------------------------------------------------------------------- collect


def collect(settings: config.Settings, now: datetime) -> list[CalendarStatus]:
    """Every calendar the database knows, plus configured ones not synced yet."""
    engine = open_database(settings)
    try:
        with transaction(sessions(engine)) as session:
            rows = list(session.scalars(select(Calendar).order_by(Calendar.account, Calendar.id)))
            latest = select(PushChannel.calendar_id, func.max(PushChannel.expires)).group_by(
                PushChannel.calendar_id
            )
            channels: dict[int, datetime] = dict(session.execute(latest).all())
            push = push_states(session, [row.id for row in rows], now)
            meeting_ends = _meeting_ends(session)
            foreign = _other_installation(session, now)
    except SQLAlchemyError as error:
        raise Unavailable(
            f"database {database_label(settings.syncd.database)}: {database_error(error)}"
        ) from None
    finally:
        engine.dispose()
    timing = Cadence.from_settings(settings.sync)
    found = [
        dataclasses.replace(
            _status(row, push.get(row.id, Push.NONE), channels, meeting_ends, timing, now),
            other_installation=foreign.get(row.id, 0),
        )
        for row in rows
    ]
    known = {(row.account, row.address) for row in rows}
    for account in settings.accounts:
        for address in account.calendars:
            if (account.name, address) not in known:
                found.append(_never_synced(account, address, now))
    return found


def _meeting_ends(session: Session) -> dict[int, datetime]:
    """Per calendar, the first end of a 1:1 after its last sync: a sync trigger."""
    query = (
        select(Occurrence.calendar_id, func.min(Occurrence.end))
        .join(Calendar, Calendar.id == Occurrence.calendar_id)
        .where(
            Occurrence.pair_id.is_not(None),
            Occurrence.cancelled.is_(False),
            Occurrence.end > Calendar.last_sync_at,
        )
        .group_by(Occurrence.calendar_id)
    )
    return dict(session.execute(query).all())


def _other_installation(session: Session, now: datetime) -> dict[int, int]:
    """Per calendar, the upcoming events another installation's block is on."""
    query = (
        select(Occurrence.calendar_id, func.count())
        .where(
            Occurrence.verdict == detect.Reason.OTHER_INSTALLATION.value,
            Occurrence.end > now,
        )
        .group_by(Occurrence.calendar_id)
    )
    return {calendar: int(count) for calendar, count in session.execute(query).all()}


def _status(
    row: Calendar,
    push: Push,
    channels: dict[int, datetime],
    meeting_ends: dict[int, datetime],
    timing: Cadence,
    now: datetime,
) -> CalendarStatus:
    expires = channels.get(row.id)
    leased = row.lease_until is not None and row.lease_until > now
    return CalendarStatus(
        account=row.account,
        provider=row.provider,
        calendar=row.address,
        last_sync=row.last_sync_at,
        cursor_at=row.cursor_at if row.cursor is not None else None,
        push_expires=expires,
        next_due=next_due(row, timing, push, meeting_ends.get(row.id), now),
        last_error=row.last_error,
        error_count=row.error_count,
        needs_reauth=row.needs_reauth,
        leased_by=row.lease_owner if leased else None,
        push=push,
    )


def _never_synced(account: config.Account, address: str, now: datetime) -> CalendarStatus:
    return CalendarStatus(
        account=account.name,
        provider=account.provider,
        calendar=address,
        last_sync=None,
        cursor_at=None,
        push_expires=None,
        next_due=now,
        last_error=None,
        error_count=0,
        needs_reauth=False,
        leased_by=None,
    )


def exit_status(calendars: list[CalendarStatus]) -> int:
    """1 when any calendar needs re-authorisation or has an error streak, else 0."""
    return 1 if any(calendar.unhealthy for calendar in calendars) else 0


# --------------------------------------------------------------------------- render

_COLUMNS = ("ACCOUNT", "CALENDAR", "LAST SYNC", "CURSOR", "PUSH", "NEXT DUE", "LAST ERROR", "")


def span(delta: timedelta) -> str:
    """A duration in its largest whole unit: 45s, 12m, 5h, 3d."""
    seconds = int(abs(delta).total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _cells(calendar: CalendarStatus, now: datetime) -> tuple[str, ...]:
    last = "never" if calendar.last_sync is None else f"{span(now - calendar.last_sync)} ago"
    cursor = "-" if calendar.cursor_at is None else span(now - calendar.cursor_at)
    if calendar.push_expires is None:
        push = "polling"
    elif calendar.push_expires > now:
        push = f"expires in {span(calendar.push_expires - now)}"
        if calendar.push is Push.DOUBTED:
            push += ", missed a change"
    else:
        push = f"expired {span(now - calendar.push_expires)} ago"
    if calendar.needs_reauth or calendar.next_due is None:
        due = "never"
    elif calendar.leased_by is not None:
        due = "syncing"
    elif calendar.next_due > now:
        due = f"in {span(calendar.next_due - now)}"
    elif now - calendar.next_due > OVERDUE_AFTER:
        due = f"overdue {span(now - calendar.next_due)}"
    else:
        due = "now"
    error = "-"
    if calendar.last_error:
        text = " ".join(calendar.last_error.split())
        if calendar.error_count > 1:
            text = f"{calendar.error_count}x {text}"
        error = text if len(text) <= ERROR_WIDTH else text[: ERROR_WIDTH - 1] + "…"
    flags = ["RE-AUTH"] if calendar.needs_reauth else []
    if calendar.other_installation:
        flags.append(f"{calendar.other_installation} OF ANOTHER INSTALLATION")
    flag = ", ".join(flags)
    return (calendar.account, calendar.calendar, last, cursor, push, due, error, flag)


def format_table(calendars: list[CalendarStatus], now: datetime) -> str:
    """One row per calendar, columns aligned, for a terminal."""
    if not calendars:
        return "no calendars yet: none is configured and none has been synced"
    rows = [_COLUMNS, *(_cells(calendar, now) for calendar in calendars)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
