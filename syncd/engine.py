"""One calendar's sync: pull changes, classify, attach agendas, plan writes, apply.

The algorithm, for one calendar at time ``now``:

1. **Pull.** Read every page of changes since the stored cursor (a full sync
   of the window when there is none). An expired cursor drops the cursor and
   does a full sync; rows of the mirror not seen in a full sync are swept, so
   deletions made while the cursor was stale are not missed.
2. **Mirror.** Each changed event updates the ``occurrences`` mirror. A
   changed series master is expanded into its occurrences inside the window
   (and re-expanded later when the window has moved past what was expanded),
   so the horizon can advance without any change at the provider.
3. **Classify and attach.** Every occurrence is classified (``detect``); a 1:1
   gets its pair and its meeting (``agenda``). This commits before any write.
4. **Plan.** In the organizer's copy only, for each series (an ad-hoc event is
   its own series) the next ``horizon_occurrences`` occurrences that start in
   the future and within ``horizon_days`` should carry the block. The mirror
   keeps a digest of the block each copy holds, so an unchanged calendar costs
   no read and no write. A future copy that stopped being a 1:1 (opt-out, a
   third person) has its block removed.
5. **Write.** Re-read the copy, merge the block into its current body, write
   with If-Match on the etag just read. A precondition failure (a person or
   another client wrote in between) re-reads and re-merges, a bounded number
   of times, so a concurrent human edit is never lost.
   A **settled** pass skips 2 to 5: the pull brought nothing, no mark asks
   for a sync, and time moved none of the calendar's 1:1s across a line (a
   start or end since the last sync, the horizon's edge, a series'
   expansion): then no block can have changed (``_time_stood_still``). Every agenda
   edit marks the pair's calendars (``push.mark_pair_due``), and a calendar
   is planned in full at least once per process and every hour.
6. **Commit the cursor** last. A crash before that re-reads the same changes
   on restart; the writes already made come back with the wanted block and
   are not repeated, so nothing is lost and nothing duplicated.

Provider errors decide by type: rate limits and transient errors retry with
backoff (writes are safe to retry, being conditional), ``AuthRevoked`` marks
the calendar for re-authorisation, anything else fails this calendar only.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from functools import partial
from typing import TypeVar

from sqlalchemy import Connection, bindparam, case, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from providers.base import (
    AuthRevoked,
    CursorExpired,
    NotFound,
    NotWritable,
    PreconditionFailed,
    Provider,
    ProviderError,
    QuotaExceeded,
    RateLimited,
    Transient,
)
from providers.model import Event, Unreadable, Window
from syncd import agenda, block, budget, config, detect, installation, people
from syncd.bodies import Bodies, Body
from syncd.mirrored import PRELOAD_FROM, Mirror
from syncd.store import statements, transaction
from syncd.store.models import (
    Calendar,
    Meeting,
    Occurrence,
    Pair,
    PushChannel,
    UtcDateTime,
    WriteLog,
)

log = logging.getLogger(__name__)

#: The skip reason of an event the provider returned but syncd cannot read.
UNREADABLE = "unreadable"
#: The longest a calendar goes without a full plan, however settled it looks.
REPLAN_AT_LEAST_EVERY = timedelta(hours=1)
#: How many unreadable events a process remembers having warned about.
MAX_WARNED = 10_000
CURSOR_VERSION = 1  # bump when the meaning of stored cursors changes: old ones are dropped
T = TypeVar("T")


#: The defaults are the schema's (``[syncd]``, ``[sync]``): a setting is defined once.
_CORE, _SYNC = config.Core(), config.Sync()


@dataclass(frozen=True, slots=True)
class Policy:
    """What the engine needs from the configuration, and nothing else.

    ``carry_talking_points`` and ``dry_run`` come from ``[syncd]``, the rest
    from ``[sync]``; unchecked talking points of ended meetings are shown in
    the pair's next one when ``carry_talking_points``.
    """

    base_url: str
    zone: tzinfo
    rules: detect.Rules
    #: This installation's identity (``syncd.installation``); by default from ``base_url``.
    installation: str = ""
    template: tuple[str, ...] = ()
    carry_talking_points: bool = _CORE.carry_talking_points
    window_days: int = _SYNC.window_days
    past_days: int = _SYNC.past_days
    horizon_occurrences: int = _SYNC.horizon_occurrences
    horizon_days: int = _SYNC.horizon_days
    max_write_attempts: int = _SYNC.max_write_attempts
    #: transient failures retried within one sync (not a setting)
    retry_attempts: int = 4
    dry_run: bool = _CORE.dry_run
    #: When a block may be rewritten where writes mail the attendees.
    mail_budget: budget.Budget = budget.Budget()

    def __post_init__(self) -> None:
        if not self.installation:
            object.__setattr__(self, "installation", installation.identity(None, self.base_url))


@dataclass
class Report:
    """What one sync did; summed over calendars for ``sync-once``."""

    calendars: int = 0
    events_seen: int = 0
    one_on_ones: int = 0
    meetings: set[int] = field(default_factory=set)
    writes: int = 0
    planned: int = 0
    #: Meeting updates the writes mailed (or, in a dry run, would mail) to attendees.
    attendee_mails: int = 0
    #: Out-of-date blocks the mail budget left for later (the agenda page is current).
    deferred: int = 0
    #: polls that found changes a live push channel had not announced
    unnotified: int = 0
    #: In a dry run, one line per write it would make: calendar, event, what changes.
    would_write: list[str] = field(default_factory=list)
    conflicts: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    error_kinds: Counter[str] = field(default_factory=Counter)  # failed syncs by error class
    full_syncs: int = 0
    push_lags: list[float] = field(default_factory=list)  # seconds from a push to its write

    def merge(self, other: Report) -> None:
        self.calendars += other.calendars
        self.events_seen += other.events_seen
        self.one_on_ones += other.one_on_ones
        self.meetings |= other.meetings
        self.writes += other.writes
        self.planned += other.planned
        self.attendee_mails += other.attendee_mails
        self.deferred += other.deferred
        self.unnotified += other.unnotified
        self.would_write.extend(other.would_write)
        self.conflicts += other.conflicts
        self.skipped.update(other.skipped)
        self.errors.extend(other.errors)
        self.error_kinds.update(other.error_kinds)
        self.full_syncs += other.full_syncs
        self.push_lags.extend(other.push_lags)

    def fail(self, address: str, error: Exception, text: str | None = None) -> None:
        """Count one calendar's failed sync: a line in ``errors``, its class in ``error_kinds``."""
        self.errors.append(f"{address}: {text or f'{type(error).__name__}: {error}'}")
        self.error_kinds[type(error).__name__] += 1


#: The longest last error kept on a calendar: enough for any provider's message.
MAX_ERROR_TEXT = 2000
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=1)
QUOTA_PAUSE = timedelta(hours=1)


def retry_at(error: Exception, failures: int, now: datetime) -> datetime | None:
    """When a failing calendar is worth trying again; None: not until a person acts.

    Exponential in the number of failures in a row, capped; a spent quota
    opens the circuit for an hour (retrying sooner only burns more of it); a
    revoked grant waits for re-authorisation. Anything else (a provider
    outage, or a bug in syncd) backs off exponentially.
    """
    if isinstance(error, AuthRevoked):
        return None
    if isinstance(error, QuotaExceeded):
        return now + QUOTA_PAUSE
    if isinstance(error, RateLimited) and error.retry_after is not None:
        return now + max(timedelta(seconds=error.retry_after), BACKOFF_BASE)
    doubling: int = 2 ** min(failures - 1, 16)
    return now + min(BACKOFF_BASE * doubling, BACKOFF_CAP)


def _backoff(error: BaseException | None, attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt``: what a 429 asks, or doubling."""
    if isinstance(error, RateLimited) and error.retry_after is not None:
        return min(float(error.retry_after), 300.0)
    return min(0.5 * 2.0 ** (attempt - 1), 30.0) + random.uniform(0, 1)


@dataclass(frozen=True, slots=True)
class SyncState:
    """What a sync needs of its calendar's row before the pull.

    A claim reads the whole row anyway, so it hands this over and a settled
    poll saves its only read. Taken at claim time, a moment before the sync:
    the lease keeps every other sync off the row meanwhile, and a mark that
    lands in between is not lost (the sync clears a mark only if it is the
    one it read, so the calendar stays due).
    """

    cursor: str | None
    cursor_version: int | None
    cursor_at: datetime | None
    next_sync_at: datetime | None
    pushed_at: datetime | None
    last_sync_at: datetime | None
    wake_at: datetime | None

    @classmethod
    def of(cls, row: Calendar) -> SyncState:
        return cls(
            row.cursor,
            row.cursor_version,
            row.cursor_at,
            row.next_sync_at,
            row.pushed_at,
            row.last_sync_at,
            row.wake_at,
        )


#: What a sync reads of its calendar's row before the pull, when no claim handed it over.
_SYNC_STATE = select(
    Calendar.cursor,
    Calendar.cursor_version,
    Calendar.cursor_at,
    Calendar.next_sync_at,
    Calendar.pushed_at,
    Calendar.last_sync_at,
    Calendar.wake_at,
).where(Calendar.id == bindparam("calendar"))

#: What every sync leaves on its calendar row. Built once, like the read
#: above: building an UPDATE of eight columns costs a settled poll more CPU
#: than running it. ``full_at`` is the sync's time after a full sync
#: (a new cursor window) and NULL otherwise (the window stays where it was).
_SYNCED = (
    update(Calendar)
    .where(Calendar.id == bindparam("calendar"))
    .values(
        cursor=bindparam("next_cursor"),
        cursor_version=CURSOR_VERSION,
        cursor_at=func.coalesce(
            bindparam("full_at", type_=UtcDateTime),
            Calendar.cursor_at,
            bindparam("synced_at", type_=UtcDateTime),
        ),
        last_sync_at=bindparam("synced_at", type_=UtcDateTime),
        due_hint=None,  # the scheduler works out the next time
        last_error=None,
        error_count=0,
        needs_reauth=False,
    )
)
#: The same after a planned pass, which also decides when to look again.
_SYNCED_PLANNED = _SYNCED.values(wake_at=bindparam("wake", type_=UtcDateTime))

#: When time next moves one of a calendar's 1:1s across a line: the earliest
#: start and end still ahead, the earliest start beyond the horizon's far
#: edge (it enters the horizon ``horizon_days`` before it starts), and the
#: series expansions (one runs short a day before the horizon reaches its
#: end; NULL: never expanded, plan again at once). Asked after each planned
#: pass, so that a settled poll decides without asking the database.
_LINES = select(
    func.min(case((Occurrence.start >= bindparam("now"), Occurrence.start))),
    func.min(case((Occurrence.end >= bindparam("now"), Occurrence.end))),
    func.min(case((Occurrence.start >= bindparam("now_reach"), Occurrence.start))),
    func.min(case((Occurrence.is_master.is_(True), Occurrence.expanded_until))),
    func.count(case((Occurrence.is_master.is_(True) & Occurrence.expanded_until.is_(None), 1))),
).where(
    Occurrence.calendar_id == bindparam("calendar"),
    Occurrence.verdict == detect.Reason.ONE_ON_ONE.value,
)


@dataclass(slots=True)
class _Pass:
    """One calendar's sync in progress, handed down instead of a long argument list."""

    calendar_id: int
    address: str
    now: datetime
    window: Window
    report: Report
    #: mirror rows written in this pass, by event id (ids are known only after a flush)
    touched: dict[str, Occurrence] = field(default_factory=dict)
    changed: int = 0  # events pulled that were new or changed since mirrored, and removals
    invites: dict[str, agenda.Invite] = field(default_factory=dict)  # event -> tag's replica
    mirror: Mirror | None = None  # the calendar's rows, for this pass's transaction
    #: pairs met in this pass, by their two people: a series' occurrences share one
    pairs: dict[tuple[str, str], Pair] = field(default_factory=dict)

    def rows(self, session: Session) -> Mirror:
        if self.mirror is None or self.mirror.session is not session:
            self.mirror = Mirror(session, self.calendar_id)
        return self.mirror

    def delete(self, session: Session, row: Occurrence) -> None:
        """Delete a mirrored row: gone from the mirror and from what this pass wrote."""
        self.rows(session).delete(row)
        self.touched.pop(row.event_id, None)

    def dropped(self, session: Session, event_id: str) -> None:
        """An event and its occurrences were deleted by a bulk statement: forget them."""
        for key in self.rows(session).drop(event_id):
            self.touched.pop(key, None)


@dataclass(slots=True)
class _Pulled:
    """Everything one pull read: the changes, the unreadable events, the next cursor."""

    full: bool
    events: list[Event] = field(default_factory=list)
    removed: set[str] = field(default_factory=set)
    unreadable: list[Unreadable] = field(default_factory=list)
    cursor: str | None = None

    @property
    def nothing(self) -> bool:
        """An incremental pull that found no change."""
        return not (self.full or self.events or self.removed or self.unreadable)


@dataclass(frozen=True, slots=True)
class _Write:
    """One planned write: put ``text`` (tagged ``token``) in, or take the block out."""

    row_id: int
    text: str | None
    token: str | None
    occasion: budget.Occasion = budget.Occasion.FREE


def digest(block_text: str | None, token: str | None) -> str | None:
    """Fingerprint of the block a copy holds, plus its tag's token; None when it has neither.

    The token, not the whole tag: a block tagged before tags named their
    installation (a bare token) is the same block, and must not be rewritten
    (mailing every Outlook attendee) only to add the name.
    """
    if block_text is None and token is None:
        return None
    payload = f"{block_text or ''}\0{token or ''}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(payload).hexdigest()


def judge(event: Event, policy: Policy) -> detect.Verdict:
    """``detect.classify``, except that another installation's block is never ours to touch."""
    owner, _ = installation.parse_tag(event.tag)
    if owner is not None and owner != policy.installation:
        return detect.Verdict(
            detect.Reason.OTHER_INSTALLATION,
            f"its block was written by another syncd installation ({owner}); left alone",
        )
    return detect.classify(event, policy.rules)


def _would(address: str, row: Occurrence, change: str, occasion: budget.Occasion) -> str:
    title = " ".join(row.title.split())[:60] or "(no title)"
    mail = "" if occasion is budget.Occasion.FREE else f" (mails the attendees: {occasion})"
    return f"{address}: {title!r} at {row.start:%Y-%m-%d %H:%M}Z: would {change}{mail}"


class CalendarSync:
    """Syncs calendars of one provider account into one store."""

    def __init__(
        self,
        provider: Provider,
        factory: sessionmaker[Session],
        policy: Policy,
        *,
        account: str,
        sleep: Callable[[float], None] = time.sleep,
        bodies: Bodies | None = None,
    ) -> None:
        self.provider = provider
        #: the text of each writable copy as last read, so a write needs no GET
        self.bodies = bodies if bodies is not None else Bodies()
        self.factory = factory
        self.policy = policy
        self.account = account
        self.sleep = sleep
        self._warned: OrderedDict[tuple[str, str | None, str], None] = OrderedDict()
        #: calendar -> when this process last planned it, and when time next
        #: moves one of its 1:1s across a line (``_next_line``)
        self._planned: dict[int, tuple[datetime, datetime]] = {}

    # -- provider calls, with retries for what is worth retrying ---------------

    def _call(self, fn: Callable[[], T]) -> T:
        """``fn()``, retried with backoff when the provider is busy or briefly failing.

        The first attempt runs outside tenacity: nearly every call succeeds at
        once, and a settled poll would otherwise pay for a retry loop it
        never uses.
        """
        try:
            return fn()
        except (Transient, RateLimited) as error:
            if self.policy.retry_attempts <= 1:
                raise
            self.sleep(_backoff(error, 1))

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return _backoff(error, state.attempt_number + 1)

        retrying = Retrying(
            retry=retry_if_exception_type((Transient, RateLimited)),
            stop=stop_after_attempt(self.policy.retry_attempts - 1),
            wait=wait,
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(fn)

    # -- entry point -----------------------------------------------------------

    def sync(
        self,
        address: str,
        now: datetime,
        calendar_id: int | None = None,
        state: SyncState | None = None,
    ) -> Report:
        """Sync one calendar; provider failures are recorded on the calendar, not raised.

        ``calendar_id``: its row, when the caller holds it already (a claim
        does), which saves a transaction on every poll; ``state``: what the
        claim read of that row, which saves the read.
        """
        report = Report(calendars=1)
        if calendar_id is None:
            calendar_id, state = self._calendar_row(address), None
        try:
            self._sync(calendar_id, address, now, report, state)
        except AuthRevoked as error:
            report.fail(address, error, f"needs re-authorisation ({error})")
            self.record_failure(calendar_id, now, error)
        except ProviderError as error:
            report.fail(address, error)
            self.record_failure(calendar_id, now, error)
        return report

    def _calendar_row(self, address: str) -> int:
        with transaction(self.factory) as session:
            row = session.scalars(
                select(Calendar).where(
                    Calendar.account == self.account, Calendar.address == address
                )
            ).one_or_none()
            if row is None:
                row = Calendar(account=self.account, provider=self.provider.name, address=address)
                session.add(row)
                session.flush()
            return row.id

    def record_failure(self, calendar_id: int, now: datetime, error: Exception) -> None:
        """Keep the error on the calendar and back off; a revoked grant waits for re-auth.

        Also for failures the engine did not see coming (the runtime records a
        bug in one calendar's sync here too), so that none of them hot-loops.
        """
        with transaction(self.factory) as session:
            row = session.get_one(Calendar, calendar_id)
            row.last_error = f"{type(error).__name__}: {error}"[:MAX_ERROR_TEXT]
            row.error_count += 1
            row.needs_reauth = row.needs_reauth or isinstance(error, AuthRevoked)
            row.next_sync_at = retry_at(error, row.error_count, now)
            row.due_hint = None  # the scheduler works out the next time

    def _sync(
        self,
        calendar_id: int,
        address: str,
        now: datetime,
        report: Report,
        state: SyncState | None,
    ) -> None:
        policy = self.policy
        window = Window(
            now - timedelta(days=policy.past_days), now + timedelta(days=policy.window_days)
        )
        row = state
        if row is None:
            with statements(self.factory) as connection:
                # Core, not the ORM: this runs on every poll without a claim, and
                # a Session's bookkeeping would cost more than the statement
                row = SyncState(*connection.execute(_SYNC_STATE, {"calendar": calendar_id}).one())
        cursor = row.cursor if row.cursor_version == CURSOR_VERSION else None
        mark, pushed, last_sync, woken = (
            row.next_sync_at,
            row.pushed_at,
            row.last_sync_at,
            row.wake_at,
        )
        if cursor is not None and self._window_outgrown(row.cursor_at, now):
            log.info("the window of %s's cursor no longer covers the horizon", address)
            cursor = None
        asked = mark is not None or pushed is not None or (woken is not None and woken <= now)
        quiet = not asked and self._time_stood_still(calendar_id, last_sync, now)

        pulled = self._pull(address, cursor, window)
        next_cursor, full = pulled.cursor, pulled.full
        if full:
            report.full_syncs += 1
        report.events_seen += len(pulled.events) + len(pulled.unreadable)

        run = _Pass(calendar_id, address, now, window, report)
        planned, wake = False, None
        if not (quiet and pulled.nothing):
            self._skip_unreadable(run, pulled.unreadable)
            with transaction(self.factory) as session:
                self._apply_changes(session, run, pulled, full)
                self._expand_stale_series(session, run)
                self._attach(session, run)
            foreign = report.skipped[detect.Reason.OTHER_INSTALLATION.value]
            if foreign:
                log.warning(
                    "%s: %d event(s) carry the block of another syncd installation; left "
                    "alone (two installations on one calendar: see `syncd explain`)",
                    address,
                    foreign,
                )
            wake = self._write_planned(calendar_id, address, now, report)
            self._planned[calendar_id] = (now, self._next_line(calendar_id, now))
            planned = True

        with statements(self.factory) as connection:
            connection.execute(
                _SYNCED_PLANNED if planned else _SYNCED,
                {
                    "calendar": calendar_id,
                    "next_cursor": next_cursor,
                    "full_at": now if full else None,
                    "synced_at": now,
                    "wake": wake,
                },
            )
            if planned and run.changed and not full and mark is None and pushed is None:
                self._doubt_channels(connection, calendar_id, address, last_sync, now, run)
            if pushed is not None and report.writes:
                # what the push asked for is now in the invites (times on the sync's clock)
                report.push_lags.append(max(0.0, (now - pushed).total_seconds()))
            if mark is not None or pushed is not None:
                # Done what was asked. Compare-and-clear in one statement: a
                # notification judged meanwhile moved the mark, and must keep
                # the calendar due (and its push time) even if it lands
                # between our read and write.
                due = Calendar.next_sync_at
                connection.execute(
                    update(Calendar)
                    .where(
                        Calendar.id == calendar_id, due.is_(None) if mark is None else due == mark
                    )
                    .values(next_sync_at=None, pushed_at=None)
                )

    def _doubt_channels(
        self,
        connection: Connection,
        calendar_id: int,
        address: str,
        last_sync: datetime | None,
        now: datetime,
        run: _Pass,
    ) -> None:
        """A poll found changes no notification announced: the live channels missed them.

        Only channels that were open through the whole interval are doubted
        (a change from before a channel existed was never its to announce);
        the scheduler then polls the calendar every ``max_poll`` again until
        one is heard from.
        """
        if last_sync is None:
            return
        doubted = connection.execute(
            update(PushChannel)
            .where(
                PushChannel.calendar_id == calendar_id,
                PushChannel.expires > now,
                PushChannel.created_at <= last_sync,
            )
            .values(missed_at=now)
        )
        if doubted.rowcount:
            run.report.unnotified += 1
            log.info(
                "%s: a poll found %d change(s) no notification announced; polling it more "
                "often until its push channel is heard from again",
                address,
                run.changed,
            )

    def _time_stood_still(
        self, calendar_id: int, last_sync: datetime | None, now: datetime
    ) -> bool:
        """Whether, if the pull brings nothing, this pass can change nothing.

        The blocks a calendar should carry change only when its events change
        (the pull, checked by the caller), an agenda is edited (a mark,
        likewise), or time moves one of its 1:1s across a line (``_LINES``):
        a start or an end (carry-over; the next occurrence entering the
        horizon), an occurrence reaching the horizon's far edge, a series'
        expansion running short. Only a sync changes a calendar's mirror, and
        every planned pass works out its next line, so no line was crossed
        while ``now`` is short of it: a settled poll costs one list call and
        two statements. A calendar is planned in full at least once per
        process (a restart may bring a new template, base_url or policy) and
        once every ``REPLAN_AT_LEAST_EVERY``.
        """
        planned = self._planned.get(calendar_id)
        if self.policy.dry_run or last_sync is None or planned is None:
            return False
        planned_at, line = planned
        if not timedelta(0) <= now - planned_at < REPLAN_AT_LEAST_EVERY:
            return False  # a safety net: whatever was missed is caught within the hour
        return now < line

    def _next_line(self, calendar_id: int, now: datetime) -> datetime:
        """When time next moves one of the calendar's 1:1s across a line (see ``_LINES``).

        ``now`` itself when a line is due already (a series never expanded),
        so the next poll plans again; far in the future when it has no 1:1
        (the hourly replan still applies).
        """
        reach = timedelta(days=self.policy.horizon_days)
        with statements(self.factory) as connection:
            start, end, beyond, expanded, unexpanded = connection.execute(
                _LINES, {"calendar": calendar_id, "now": now, "now_reach": now + reach}
            ).one()
        if unexpanded:
            return now
        lines = [start, end]
        if beyond is not None:
            lines.append(beyond - reach)
        if expanded is not None:
            lines.append(expanded - reach - timedelta(days=1))
        return min(
            (line for line in lines if line is not None),
            default=datetime.max.replace(tzinfo=now.tzinfo),
        )

    def _window_outgrown(self, since: datetime | None, now: datetime) -> bool:
        """Whether a cursor taken at ``since`` still sees the whole horizon.

        Some cursors are bound to the window of the full sync that made them
        (Graph's calendarView delta), so once the horizon reaches past that
        window's end, only a new full sync can see what lies beyond.
        """
        if since is None:
            return False
        slack = max(1, self.policy.window_days - self.policy.horizon_days - 1)
        return since + timedelta(days=slack) <= now

    # -- 1. pull ---------------------------------------------------------------

    def _pull(self, address: str, cursor: str | None, window: Window) -> _Pulled:
        def read(start_from: str | None, full: bool) -> _Pulled:
            pulled = _Pulled(full=full)
            for page in self.provider.changes(address, start_from, window):
                pulled.events.extend(page.events)
                pulled.removed.update(page.removed)
                pulled.unreadable.extend(page.unreadable)
                pulled.cursor = page.cursor or pulled.cursor
            return pulled

        if cursor is not None:
            try:
                return self._call(lambda: read(cursor, False))
            except CursorExpired:
                log.info("cursor expired for %s; resyncing the window", address)
        return self._call(lambda: read(None, True))

    def _skip_unreadable(self, run: _Pass, unreadable: Sequence[Unreadable]) -> None:
        """Count and log each unreadable event; the rest of the calendar syncs on.

        A warning per event and reason, once per process: an incremental pull
        brings an event back only when it changed, and a full resync's repeat
        of an event already reported is only counted.
        """
        for item in unreadable:
            run.report.skipped[UNREADABLE] += 1
            seen = (run.address, item.event_id, item.reason)
            if seen in self._warned:  # a full resync brings it back unchanged: said already
                self._warned.move_to_end(seen)
                continue
            self._warned[seen] = None
            while len(self._warned) > MAX_WARNED:
                self._warned.popitem(last=False)
            log.warning(
                "skipping an unreadable event in %s (%s): %s",
                run.address,
                item.event_id or "id unreadable",
                item.reason,
            )

    # -- 2. mirror -------------------------------------------------------------

    def _apply_changes(
        self,
        session: Session,
        run: _Pass,
        pulled: _Pulled,
        full: bool,
    ) -> None:
        run.changed += len(pulled.removed)
        mirror = run.rows(session)
        if full or len(pulled.events) >= PRELOAD_FROM or any(e.recurring for e in pulled.events):
            mirror.load()  # one read instead of one per event (and occurrence)
        for event_id in pulled.removed:
            self._forget(session, run, event_id)
        # An unreadable event still exists: a full sync must not sweep its row.
        seen = {item.event_id for item in pulled.unreadable if item.event_id is not None}
        for event in pulled.events:
            seen.add(event.id)
            if event.recurring and event.cancelled:
                self._forget(session, run, event.id)
                continue
            verdict = self._upsert(session, run, event, pulled=True)
            if verdict is not None and verdict.is_one_on_one:
                run.report.one_on_ones += 1
            elif verdict is not None:
                run.report.skipped[verdict.reason.value] += 1
            if event.recurring:
                seen.update(self._expand(session, run, event.id))
        if full:
            self._sweep(session, run, seen)

    def _forget(self, session: Session, run: _Pass, event_id: str) -> None:
        """Drop a deleted event (or series) from the mirror.

        When it is the organizer's copy of a 1:1, its agendas are marked
        cancelled: the meeting is not going to happen (Graph reports the
        organizer's cancelled occurrence only as a removal). People's notes
        stay; a copy that comes back un-cancels its agenda on the next sync.
        """
        match = (
            Occurrence.calendar_id == run.calendar_id,
            (Occurrence.event_id == event_id) | (Occurrence.series_id == event_id),
        )
        for row in session.scalars(
            select(Occurrence).where(
                *match, Occurrence.organizer_copy.is_(True), Occurrence.pair_id.is_not(None)
            )
        ):
            agenda.mark_cancelled(session, row.key)
        session.execute(delete(Occurrence).where(*match))
        run.dropped(session, event_id)

    def _sweep(self, session: Session, run: _Pass, seen: set[str]) -> None:
        """After a full sync, drop what the provider no longer has in the window."""
        rows = session.scalars(
            select(Occurrence).where(
                Occurrence.calendar_id == run.calendar_id, Occurrence.end > run.window.start
            )
        )
        for occurrence in list(rows):
            if occurrence.event_id not in seen:
                run.delete(session, occurrence)

    def _expand(self, session: Session, run: _Pass, series_id: str) -> set[str]:
        calendar_id, window = run.calendar_id, run.window
        try:
            instances = self._call(partial(self.provider.instances, run.address, series_id, window))
        except NotFound:
            self._forget(session, run, series_id)
            return set()
        ids = set()
        for instance in instances:
            ids.add(instance.id)
            self._upsert(session, run, instance)
        stale = session.scalars(
            select(Occurrence).where(
                Occurrence.calendar_id == calendar_id,
                Occurrence.series_id == series_id,
                Occurrence.start >= window.start,
                Occurrence.start < window.end,
            )
        )
        for occurrence in list(stale):
            if occurrence.event_id not in ids:
                run.delete(session, occurrence)
        master = run.rows(session).get(series_id)
        if master is not None:
            master.expanded_until = window.end
        return ids

    def _expand_stale_series(self, session: Session, run: _Pass) -> None:
        """Re-expand series whose expansion no longer covers the horizon."""
        needed = run.now + timedelta(days=self.policy.horizon_days + 1)
        masters = list(
            session.scalars(
                select(Occurrence).where(
                    Occurrence.calendar_id == run.calendar_id,
                    Occurrence.is_master.is_(True),
                    Occurrence.verdict == detect.Reason.ONE_ON_ONE.value,
                )
            )
        )
        for master in masters:
            if master.expanded_until is None or master.expanded_until < needed:
                self._expand(session, run, master.event_id)

    def _upsert(
        self, session: Session, run: _Pass, event: Event, *, pulled: bool = False
    ) -> detect.Verdict | None:
        """Mirror one event; None if it is bad (logged and skipped, the calendar goes on).

        ``pulled``: it came from the change feed, not from expanding a series,
        so a version not mirrored yet is a change someone made (``run.changed``).
        """
        try:
            verdict = judge(event, self.policy)
            found = block.extract(event.description)
            owner, token = installation.parse_tag(event.tag)
            held = digest(found, token)
        except Exception as error:
            log.warning("skipping event %s: %s: %s", event.id, type(error).__name__, error)
            run.report.skipped["bad-event"] += 1
            return None
        mirror = run.rows(session)
        row = mirror.get(event.id)
        if pulled and (row is None or row.etag != event.etag):
            run.changed += 1
        if row is None:
            row = mirror.add(event.id)
        row.series_id = event.series_id
        row.is_master = event.recurring
        row.ical_uid = event.ical_uid
        row.original_start = event.key.original_start
        row.start, row.end = event.start, event.end
        row.title = event.title
        row.cancelled = event.cancelled
        row.organizer_copy = event.is_organizer_copy
        row.verdict = verdict.reason.value
        row.etag = event.etag
        row.block_digest = held
        row.has_block = found is not None
        row.pair_id = None
        if verdict.people is not None and not event.recurring:
            pair = run.pairs.get(verdict.people)
            if pair is None:
                pair, _ = agenda.pair_for(session, verdict.people, run.now)
                run.pairs[verdict.people] = pair
                # how the invite names the two (once per pair and pass: it rarely changes)
                named = {a.email.strip().lower(): a.name for a in event.attendees if a.name}
                people.remember(
                    session, {p: named[p] for p in verdict.people if p in named}, run.now
                )
            row.pair_id = pair.id
            if event.is_organizer_copy:
                self.bodies.keep(run.address, event)
            ours = owner is None or owner == self.policy.installation
            if ours and event.is_organizer_copy and token is not None and found is not None:
                # Our own tag: the invite is a replica of this meeting's agenda,
                # which a rebuilt database adopts instead of starting afresh.
                run.invites[event.id] = agenda.Invite(token, found)
        run.touched[event.id] = row
        return verdict

    # -- 3. attach -------------------------------------------------------------

    def _attach(self, session: Session, run: _Pass) -> None:
        """Give every 1:1 occurrence mirrored in this pass its meeting."""
        session.flush()  # the pass's rows written in one batch
        rows = [
            row
            for row in run.touched.values()
            if not row.is_master and (row.pair_id is not None or row.cancelled)
        ]
        rows.sort(key=lambda row: row.start)  # a new pair's template goes to its first meeting
        for row in rows:
            key = row.key
            if row.pair_id is None:  # cancelled: keep its agenda, marked as such
                agenda.mark_cancelled(session, key)
                continue
            meeting = agenda.meeting_for(
                session,
                session.get_one(Pair, row.pair_id),
                key,
                start=row.start,
                end=row.end,
                title=row.title,
                cancelled=row.cancelled,
                template=self.policy.template,
                now=run.now,
                invite=run.invites.get(row.event_id),
                zone=self.policy.zone,
            )
            run.report.meetings.add(meeting.id)

    # -- 4 and 5. plan and write ---------------------------------------------------

    def plan(self, session: Session, calendar_id: int, now: datetime) -> list[Occurrence]:
        """The organizer copies that should carry a block right now."""
        policy = self.policy
        limit = now + timedelta(days=policy.horizon_days)
        rows = session.scalars(
            select(Occurrence)
            .where(
                Occurrence.calendar_id == calendar_id,
                Occurrence.is_master.is_(False),
                Occurrence.organizer_copy.is_(True),
                Occurrence.cancelled.is_(False),
                Occurrence.pair_id.is_not(None),
                Occurrence.start > now,
                Occurrence.start < limit,
            )
            .order_by(Occurrence.start)
        )
        taken: Counter[str] = Counter()
        chosen = []
        for row in rows:
            series = row.series_id or row.event_id
            if taken[series] < policy.horizon_occurrences:
                taken[series] += 1
                chosen.append(row)
        return chosen

    def _stale_blocks(self, session: Session, calendar_id: int, now: datetime) -> list[Occurrence]:
        """Future organizer copies that carry a block but are no longer 1:1s."""
        return list(
            session.scalars(
                select(Occurrence).where(
                    Occurrence.calendar_id == calendar_id,
                    Occurrence.is_master.is_(False),
                    Occurrence.organizer_copy.is_(True),
                    Occurrence.cancelled.is_(False),
                    Occurrence.pair_id.is_(None),
                    Occurrence.has_block.is_(True),
                    Occurrence.start > now,
                    Occurrence.verdict != detect.Reason.OTHER_INSTALLATION.value,
                )
            )
        )

    def _write_planned(
        self, calendar_id: int, address: str, now: datetime, report: Report
    ) -> datetime | None:
        """Write every block that is out of date and may be written now.

        Returns when a deferred rewrite (``syncd.budget``) falls due, if any.
        """
        work: list[_Write] = []
        wake: datetime | None = None
        mailed = self.provider.mails_attendees
        with transaction(self.factory) as session:
            for row in self.plan(session, calendar_id, now):
                meeting = agenda.find_meeting(session, row.key)
                assert meeting is not None, "every 1:1 row got its meeting when attached"
                view = agenda.block_view(
                    session,
                    meeting,
                    base_url=self.policy.base_url,
                    zone=self.policy.zone,
                    now=now,
                    carry=self.policy.carry_talking_points,
                )
                text = block.render(view)
                if row.block_digest == digest(text, meeting.token):
                    continue
                copy = self._budget_copy(session, row, meeting)
                occasion = budget.decide(copy, now, self.policy.mail_budget, mailed=mailed)
                if isinstance(occasion, budget.Wait):
                    report.deferred += 1
                    if occasion.until is not None:
                        wake = occasion.until if wake is None else min(wake, occasion.until)
                    continue
                tag = installation.tag(self.policy.installation, meeting.token)
                work.append(_Write(row.id, text, tag, occasion))
                if self.policy.dry_run:
                    change = "rewrite the block" if row.has_block else "add the block"
                    report.would_write.append(_would(address, row, change, occasion))
                    report.attendee_mails += occasion is not budget.Occasion.FREE
            removal = budget.Occasion.REMOVE if mailed else budget.Occasion.FREE
            for row in self._stale_blocks(session, calendar_id, now):
                work.append(_Write(row.id, None, None, removal))
                if self.policy.dry_run:
                    report.would_write.append(_would(address, row, "remove the block", removal))
                    report.attendee_mails += mailed
        report.planned += len(work)
        if self.policy.dry_run:
            return wake
        for write in work:
            try:
                self._write_one(address, write, now, report)
            except (NotFound, NotWritable) as error:
                report.skipped[type(error).__name__] += 1
                log.warning("not writing event in %s: %s", address, error)
        return wake

    def _budget_copy(self, session: Session, row: Occurrence, meeting: Meeting) -> budget.Copy:
        """What ``budget.decide`` needs of one copy: its writes and the pair's previous meeting."""
        previous_end = session.scalar(
            select(Meeting.end)
            .where(
                Meeting.pair_id == meeting.pair_id,
                Meeting.start < meeting.start,
                Meeting.cancelled.is_(False),
            )
            .order_by(Meeting.start.desc())
            .limit(1)
        )
        return budget.Copy(
            start=row.start,
            has_block=row.has_block,
            written_at=row.block_written_at,
            refreshes=row.refreshes,
            previous_end=previous_end,
        )

    def _write_one(self, address: str, write: _Write, now: datetime, report: Report) -> None:
        """Write one copy: first on the text and etag last read, re-reading only after a 412.

        The text held in ``bodies`` is tried first and costs no attempt: its
        etag is the mirror's, under which the copy was judged ours, and the
        server refuses the write if the copy changed since.
        """
        with transaction(self.factory) as session:
            row = session.get_one(Occurrence, write.row_id)
            event_id, current = row.event_id, self.bodies.get(address, row.event_id, row.etag)
        attempts = self.policy.max_write_attempts
        reads = 0
        while True:
            if current is None:
                reads += 1
                if reads > attempts:
                    report.errors.append(
                        f"{address}: gave up on one event after {attempts} conflicts"
                    )
                    return
                event = self._call(partial(self.provider.get, address, event_id))
                verdict = judge(event, self.policy)
                if verdict.reason is detect.Reason.OTHER_INSTALLATION:
                    # taken over since it was mirrored: theirs now, and never ours to rewrite
                    report.skipped[verdict.reason.value] += 1
                    self._settle(write.row_id, Body.of(event), None, "unchanged", now)
                    return
                if event.is_organizer_copy:
                    self.bodies.keep(address, event)
                current = Body.of(event)
            if write.text is None:
                body, tag = block.remove(current.description, current.is_html), current.tag
            else:
                body = block.apply(current.description, write.text, current.is_html)
                tag = write.token
            if body == current.description and tag == current.tag:
                self._settle(write.row_id, current, None, "unchanged", now)
                return
            try:
                written = self._call(
                    partial(
                        self.provider.update_description,
                        address,
                        event_id,
                        body,
                        current.etag,
                        tag,
                    )
                )
            except PreconditionFailed:
                report.conflicts += 1
                log.info("conflict writing %s; re-reading", event_id)
                current = None
                continue
            report.writes += 1
            if write.occasion is not budget.Occasion.FREE:
                report.attendee_mails += 1  # the other person of the 1:1
            self.bodies.keep(address, written)
            outcome = "removed" if write.text is None else "written"
            self._settle(write.row_id, Body.of(written), current.etag, outcome, now, write.occasion)
            return

    def _settle(
        self,
        row_id: int,
        event: Body,
        etag_before: str | None,
        outcome: str,
        now: datetime,
        occasion: budget.Occasion | None = None,
    ) -> None:
        found = block.extract(event.description)
        with transaction(self.factory) as session:
            row = session.get_one(Occurrence, row_id)
            row.etag = event.etag
            row.block_digest = digest(found, installation.parse_tag(event.tag)[1])
            row.has_block = found is not None
            if occasion is not None:
                row.block_written_at = now
                row.refreshes += occasion is budget.Occasion.REFRESH
            if etag_before is not None:
                meeting = agenda.find_meeting(session, row.key)
                meeting_id = meeting.id if meeting is not None else None
                session.add(
                    WriteLog(
                        at=now,
                        calendar_id=row.calendar_id,
                        event_id=row.event_id,
                        meeting_id=meeting_id,
                        etag_before=etag_before,
                        etag_after=event.etag,
                        block_digest=row.block_digest or "",
                        outcome=outcome,
                    )
                )
