"""Which calendar syncs when, and who syncs it.

A calendar is due when

* a push notification or an agenda edit marked it (``next_sync_at``, a
  couple of seconds out so that a burst costs one sync), or a failure's
  backoff ran out (``next_sync_at`` again);
* its poll interval passed since the last sync. Without a live push channel
  that is ``poll``. With a healthy one (live, and not caught missing a change
  since it was last heard from) it is ``push_poll``, hours: the poll is only
  the fallback that proves the channel, since a poll that finds a change no
  notification announced marks the channel as having missed it (the engine
  does). A live channel that missed one is polled every ``max_poll`` until
  it is heard from again, so a lost notification costs latency, never an
  update. Each calendar
  polls a little early by its own fixed fraction of the interval (the
  jitter), so a thousand calendars added together do not poll together
  forever after;
* a 1:1 on it ended since its last sync: the meeting's open action items
  now belong in the next invite;
* a block rewrite the mail budget deferred falls due (``wake_at``, set by
  the engine; ``syncd.budget``).

A calendar waiting for re-authorisation is never due.

Judging that takes a calendar's channels, meeting ends and interval, so a
claim judges only the calendars that can be due: those marked, and those
whose ``due_hint`` has come. The hint is a lower bound of the next due time
that the claim keeps (it moves the hint of a calendar it judged not due to
that calendar's next due time, or to an upcoming 1:1 end or channel expiry
if sooner); a sync, a lost channel and a start make it unknown (NULL: look
at it), and a mark lowers it. Both reads are index range scans, so an idle
claim costs the same at 10,000 calendars as at 1,000.

Workers, in one process or many, ``claim`` due calendars by writing a lease
(owner and expiry) on their rows. On PostgreSQL the candidates are read with
``SELECT … FOR UPDATE SKIP LOCKED`` so concurrent claimers never wait on each
other; on every database the lease itself is a compare-and-set, so two
claimers can never both win a row. A worker that dies simply stops renewing:
its leases run out and the calendars become claimable again.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, bindparam, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import ColumnElement

import providers
from syncd import config
from syncd.engine import CalendarSync, Report, SyncState
from syncd.store import transaction
from syncd.store.models import Calendar, Occurrence, PushChannel, UtcDateTime

_SYNC = config.Sync()  # the schema's defaults: a setting is defined once
POLL_INTERVAL = timedelta(seconds=_SYNC.poll_seconds)
MAX_POLL_INTERVAL = timedelta(seconds=_SYNC.max_poll_seconds)
PUSH_POLL_INTERVAL = timedelta(seconds=_SYNC.push_poll_seconds)
JITTER = 0.2
LEASE = timedelta(seconds=_SYNC.lease_seconds)
#: How many candidate rows a claim reads per free slot.
CLAIM_WINDOW = 4

#: How many calendars of one account a process syncs at once when its
#: provider is not a registered plugin (each plugin says its own: ``concurrency``).
DEFAULT_CONCURRENCY = 2


def provider_concurrency(name: str) -> int:
    """What the provider named ``name`` bears of one account at once."""
    if name not in providers.NAMES:
        return DEFAULT_CONCURRENCY
    return providers.plugin(name).concurrency


class Push(enum.Enum):
    """What a calendar's push channel is worth to its poll interval."""

    NONE = "none"  # no live channel: poll
    DOUBTED = "doubted"  # live, but a poll caught it missing a change: max_poll
    HEALTHY = "healthy"  # live and trusted: push_poll


@dataclass(frozen=True)
class Cadence:
    """How often calendars are read, and for how long a claim holds."""

    poll: timedelta = POLL_INTERVAL
    max_poll: timedelta = MAX_POLL_INTERVAL
    push_poll: timedelta = PUSH_POLL_INTERVAL
    jitter: float = JITTER
    lease: timedelta = LEASE

    @classmethod
    def from_settings(cls, sync: config.Sync) -> Cadence:
        return cls(
            poll=timedelta(seconds=sync.poll_seconds),
            max_poll=timedelta(seconds=sync.max_poll_seconds),
            push_poll=timedelta(seconds=sync.push_poll_seconds),
            lease=timedelta(seconds=sync.lease_seconds),
        )

    @property
    def stretched(self) -> timedelta:
        """The poll behind a healthy channel: never shorter than the one behind a doubted one."""
        return max(self.push_poll, self.max_poll)

    def interval(self, calendar_id: int, push: Push) -> timedelta:
        """This calendar's poll interval, moved by its own fixed share of the jitter.

        Shortened, so a poll is never later than asked for; but behind a
        healthy channel lengthened, so that a ``push_poll`` of 6 hours stays at
        most 4 polls a day for every calendar (the poll there is only the
        fallback, and a fifth later costs nothing).
        """
        digest = hashlib.blake2b(str(calendar_id).encode(), digest_size=2).digest()
        share = int.from_bytes(digest, "big") / 0xFFFF
        if push is Push.HEALTHY:
            return self.stretched * (1 + self.jitter * share)
        base = self.max_poll if push is Push.DOUBTED else self.poll
        return base * (1 - self.jitter * share)


@dataclass(frozen=True)
class Claim:
    """A calendar leased to one worker until ``until``."""

    calendar_id: int
    account: str
    provider: str
    address: str
    until: datetime
    state: SyncState | None = None  # what the claim read of the row, for the sync


@dataclass(frozen=True)
class Slots:
    """What a claimer may take on now: per account, and mailboxes already busy.

    Caps are per account because that is what a provider's limits are per
    (one credential, one tenant or domain): a slow or failing account uses
    up its own slots, never another account's.
    """

    per_account: Mapping[str, int]
    busy: frozenset[str] = field(default_factory=frozenset)
    limit: int | None = None  # all accounts together

    def total(self) -> int:
        total = sum(max(0, n) for n in self.per_account.values())
        return total if self.limit is None else min(total, self.limit)


def _ended_meeting(now: datetime) -> ColumnElement[bool]:
    """A 1:1 on this calendar ended after its last sync (and by now)."""
    return exists(
        select(Occurrence.id).where(
            Occurrence.calendar_id == Calendar.id,
            Occurrence.pair_id.is_not(None),
            Occurrence.cancelled.is_(False),
            Occurrence.end <= now,
            Occurrence.end > Calendar.last_sync_at,
        )
    )


def _trusted() -> ColumnElement[bool]:
    """A channel not caught missing a change since it was last heard from."""
    return or_(
        PushChannel.missed_at.is_(None),
        PushChannel.heard_at > PushChannel.missed_at,
    )


def push_states(session: Session, ids: Collection[int], now: datetime) -> dict[int, Push]:
    """Each calendar's ``Push``; calendars without a live channel are left out (NONE)."""
    states: dict[int, Push] = {}
    rows = session.execute(
        select(PushChannel.calendar_id, _trusted()).where(
            PushChannel.calendar_id.in_(list(ids)), PushChannel.expires > now
        )
    )
    for calendar_id, trusted in rows:
        if trusted or states.get(calendar_id) is not Push.HEALTHY:
            states[calendar_id] = Push.HEALTHY if trusted else Push.DOUBTED
    return states


def next_due(
    row: Calendar, cadence: Cadence, push: Push, meeting_end: datetime | None, now: datetime
) -> datetime | None:
    """When ``row`` is due; None: never, until a person re-authorises.

    ``meeting_end``: the first end of a 1:1 on it since its last sync, if any.
    """
    if row.needs_reauth:
        return None
    if row.next_sync_at is not None:
        return row.next_sync_at  # a mark or a backoff decides alone
    if row.last_sync_at is None:
        return now
    polled = row.last_sync_at + cadence.interval(row.id, push)
    lines = [polled] + [at for at in (meeting_end, row.wake_at) if at is not None]
    return min(lines)


def _due(row: Calendar, now: datetime, cadence: Cadence, push: Push, meeting_ended: bool) -> bool:
    when = next_due(row, cadence, push, now if meeting_ended else None, now)
    return when is not None and when <= now


def _select_due(
    session: Session,
    now: datetime,
    cadence: Cadence,
    accounts: Collection[str] | None,
    *,
    lock: bool,
    unleased: bool,
    limit: int | None = None,
    refresh: bool = False,
) -> list[Calendar]:
    """The due calendars, read through the indexes: marked ones first, then by hint.

    ``due_hint`` is a lower bound of when a calendar can next be due (NULL:
    not known), so only calendars whose hint has come are read and judged
    exactly (``_due``), however many calendars the organization has. With
    ``refresh``, those that turn out not due get their hint moved to their
    next due time, so the next claim does not read them again.
    """
    base: list[ColumnElement[bool]] = [Calendar.needs_reauth.is_(False)]
    if accounts is not None:
        base.append(Calendar.account.in_(list(accounts)))
    if unleased:
        base.append(or_(Calendar.lease_until.is_(None), Calendar.lease_until <= now))

    def read(query: Select[Calendar], room: int | None) -> list[Calendar]:
        if room is not None:
            query = query.limit(room)
        if lock:
            # Rows another claimer is looking at are skipped, not waited for;
            # SQLite has no row locks and ignores this (one process claims there).
            query = query.with_for_update(skip_locked=True, of=Calendar)
        return list(session.scalars(query))

    # Asked-for syncs (push marks, edits, backoffs run out) first, the oldest
    # mark first; then calendars whose hint has come (never looked at first).
    rows = read(
        select(Calendar)
        .where(*base, Calendar.next_sync_at <= now)
        .order_by(Calendar.next_sync_at, Calendar.id),
        limit,
    )
    # Two range reads of the (account, due_hint) index, not one with an OR:
    # "NULL or come" is no range, and the index would be walked to its end
    # over every calendar not due (all of them, on an idle claim).
    unmarked = or_(Calendar.next_sync_at.is_(None), Calendar.next_sync_at > now)
    for hint, order in (
        (Calendar.due_hint.is_(None), Calendar.id),
        (Calendar.due_hint <= now, Calendar.due_hint),
    ):
        room = None if limit is None else limit - len(rows)
        if room is not None and room <= 0:
            break
        query = select(Calendar).where(*base, unmarked, hint).order_by(order, Calendar.id)
        rows += read(query, room)
    return _judge(session, rows, now, cadence, refresh=refresh)


def _judge(
    session: Session, rows: Sequence[Calendar], now: datetime, cadence: Cadence, *, refresh: bool
) -> list[Calendar]:
    """The due ones of ``rows``; with ``refresh``, the others' hints moved on."""
    if not rows:
        return []
    ids = [row.id for row in rows]
    push = push_states(session, ids, now)
    ended = set(
        session.scalars(select(Calendar.id).where(Calendar.id.in_(ids), _ended_meeting(now)))
    )
    due_rows: list[Calendar] = []
    later: list[Calendar] = []
    for row in rows:
        is_due = _due(row, now, cadence, push.get(row.id, Push.NONE), row.id in ended)
        (due_rows if is_due else later).append(row)
    if refresh and later:
        _rehint(session, later, cadence, push, now)
    return due_rows


def settle_hints(
    factory: sessionmaker[Session],
    now: datetime,
    cadence: Cadence,
    accounts: Collection[str],
    chunk: int = 500,
) -> None:
    """Work out every calendar's hint afresh: on start, when the cadence may have changed.

    One pass over the accounts' calendars, a chunk per transaction, so the
    first claims read only what is due instead of every calendar.
    """
    after = 0
    while True:
        with transaction(factory) as session:
            rows = list(
                session.scalars(
                    select(Calendar)
                    .where(Calendar.account.in_(list(accounts)), Calendar.id > after)
                    .order_by(Calendar.id)
                    .limit(chunk)
                )
            )
            if not rows:
                return
            for row in rows:
                row.due_hint = None  # reset, then judged
            session.flush()
            _judge(session, rows, now, cadence, refresh=True)
            after = rows[-1].id


def _rehint(
    session: Session,
    rows: Sequence[Calendar],
    cadence: Cadence,
    push: Mapping[int, Push],
    now: datetime,
) -> None:
    """Move the hint of calendars found not due to the earliest they can next be due.

    That is their next due time, or sooner: the end of an upcoming 1:1 on
    them, or the expiry of a live channel (after which the poll is shorter).
    Compare-and-set on what was read, so a mark or a sync that lands
    meanwhile leaves the hint unknown instead of too late.
    """
    ids = [row.id for row in rows]
    ends = dict(
        session.execute(
            select(Occurrence.calendar_id, func.min(Occurrence.end))
            .where(
                Occurrence.calendar_id.in_(ids),
                Occurrence.pair_id.is_not(None),
                Occurrence.cancelled.is_(False),
                Occurrence.end > now,
            )
            .group_by(Occurrence.calendar_id)
        ).all()
    )
    expiries = dict(
        session.execute(
            select(PushChannel.calendar_id, func.min(PushChannel.expires))
            .where(PushChannel.calendar_id.in_(ids), PushChannel.expires > now)
            .group_by(PushChannel.calendar_id)
        ).all()
    )
    moves: list[dict[str, object]] = []
    for row in rows:
        when = next_due(row, cadence, push.get(row.id, Push.NONE), None, now)
        if when is None:
            continue
        hint = min(at for at in (when, ends.get(row.id), expiries.get(row.id)) if at is not None)
        moves.append(
            {
                "calendar": row.id,
                "hint": hint,
                "read_hint": row.due_hint,
                "read_mark": row.next_sync_at,
                "read_sync": row.last_sync_at,
            }
        )
    if moves:  # one statement for all of them (executemany)
        session.connection().execute(_MOVE_HINT, moves)


#: Compare-and-set of one calendar's hint on what the claim read (NULL equal to NULL).
_MOVE_HINT = (
    update(Calendar)
    .where(
        Calendar.id == bindparam("calendar"),
        Calendar.due_hint.is_not_distinct_from(bindparam("read_hint", type_=UtcDateTime)),
        Calendar.next_sync_at.is_not_distinct_from(bindparam("read_mark", type_=UtcDateTime)),
        Calendar.last_sync_at.is_not_distinct_from(bindparam("read_sync", type_=UtcDateTime)),
    )
    .values(due_hint=bindparam("hint", type_=UtcDateTime))
)


def due(
    session: Session,
    now: datetime,
    cadence: Cadence | None = None,
    accounts: Collection[str] | None = None,
) -> list[Calendar]:
    """The calendars to sync at ``now``, the most urgent first (leases aside)."""
    return _select_due(session, now, cadence or Cadence(), accounts, lock=False, unleased=False)


def claim(
    factory: sessionmaker[Session],
    owner: str,
    now: datetime,
    slots: Slots,
    cadence: Cadence | None = None,
    accounts: Collection[str] | None = None,
    watching: Mapping[str, Collection[str]] | None = None,
) -> list[Claim]:
    """Lease due calendars to ``owner``, within ``slots``; the leases are committed.

    ``watching``: the calendars each account watches now, when that can change
    while running (a directory account): someone who left keeps their row,
    history and agendas, but is no longer claimed.
    """
    cadence = cadence or Cadence()
    if slots.total() <= 0:
        return []
    left = dict(slots.per_account)
    room = slots.total()
    busy = set(slots.busy)
    claims: list[Claim] = []
    until = now + cadence.lease
    # Each account is read on its own, so one account's backlog can never
    # fill another's window; and a few more rows than it has room for (some
    # are set aside for a busy mailbox or jitter), never the whole backlog:
    # rows a claim reads are locked, and other workers would find nothing.
    names = [
        name
        for name, free in slots.per_account.items()
        if free > 0 and (accounts is None or name in accounts)
    ]
    with transaction(factory) as session:
        for name in names:
            window = CLAIM_WINDOW * min(left[name], room)
            rows = _select_due(
                session,
                now,
                cadence,
                [name],
                lock=True,
                unleased=True,
                limit=window,
                refresh=True,
            )
            wanted: list[Calendar] = []
            for row in rows:
                if row.address in busy:
                    continue
                if watching is not None and row.address not in watching.get(name, ()):
                    continue
                wanted.append(row)
                busy.add(row.address)
                if len(wanted) == min(left[name], room):
                    break
            if not wanted:
                continue
            # One statement leases them all; RETURNING says which we won (another
            # claimer may have got some between our read and this write).
            won = set(
                session.execute(
                    update(Calendar)
                    .where(
                        Calendar.id.in_([row.id for row in wanted]),
                        or_(Calendar.lease_until.is_(None), Calendar.lease_until <= now),
                    )
                    .values(lease_owner=owner, lease_until=until)
                    .returning(Calendar.id)
                    .execution_options(synchronize_session=False)
                ).scalars()
            )
            for row in wanted:
                if row.id not in won:
                    busy.discard(row.address)
                    continue
                left[name] -= 1
                room -= 1
                claims.append(
                    Claim(row.id, row.account, row.provider, row.address, until, SyncState.of(row))
                )
            if room == 0:
                break
    return claims


def renew(
    factory: sessionmaker[Session], owner: str, calendar_ids: Iterable[int], until: datetime
) -> set[int]:
    """Extend our leases; returns the ids still ours (a lost one was taken over)."""
    ids = list(calendar_ids)
    if not ids:
        return set()
    with transaction(factory) as session:
        session.execute(
            update(Calendar)
            .where(Calendar.id.in_(ids), Calendar.lease_owner == owner)
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )
        return set(
            session.scalars(
                select(Calendar.id).where(Calendar.id.in_(ids), Calendar.lease_owner == owner)
            )
        )


def release(factory: sessionmaker[Session], owner: str, calendar_ids: Iterable[int]) -> None:
    """Give up our leases (only ours: a lease taken over stays with its new owner)."""
    ids = list(calendar_ids)
    if not ids:
        return
    with transaction(factory) as session:
        session.execute(
            update(Calendar)
            .where(Calendar.id.in_(ids), Calendar.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


def enroll(
    factory: sessionmaker[Session], account: str, provider: str, addresses: Iterable[str]
) -> None:
    """Make sure every configured calendar has a row, so that it can be claimed.

    Workers starting together enroll the same calendars at the same moment;
    the insert skips a row another worker has just written (ON CONFLICT DO
    NOTHING on both databases) instead of failing the whole start.
    """
    with transaction(factory) as session:
        known = set(session.scalars(select(Calendar.address).where(Calendar.account == account)))
        missing = [
            {"account": account, "provider": provider, "address": address}
            for address in dict.fromkeys(addresses)
            if address not in known
        ]
        if missing:
            session.execute(_insert_ignoring_existing(session), missing)


def _insert_ignoring_existing(session: Session) -> Executable:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(Calendar).on_conflict_do_nothing(
            index_elements=["account", "address"]
        )
    return sqlite.insert(Calendar).on_conflict_do_nothing(index_elements=["account", "address"])


def tick(
    factory: sessionmaker[Session],
    syncers: Mapping[str, CalendarSync],
    now: datetime,
    cadence: Cadence | None = None,
    owner: str = "tick",
) -> Report:
    """Sync every due calendar of the accounts given, once, one after another."""
    total = Report()
    claims = claim(
        factory,
        owner,
        now,
        Slots(dict.fromkeys(syncers, 1_000_000)),
        cadence,
        accounts=list(syncers),
    )
    try:
        for claimed in claims:
            syncer = syncers[claimed.account]
            total.merge(syncer.sync(claimed.address, now, claimed.calendar_id, claimed.state))
    finally:
        release(factory, owner, [claimed.calendar_id for claimed in claims])
    return total
