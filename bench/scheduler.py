"""Scheduler cost: what handing out calendars costs as an organization grows.

Every worker calls ``claim`` about once a second whether or not anything is
due, so the idle claim (nothing due among N calendars) is paid forever, by
every worker: it is the figure to watch, in time and in SQL statements.
After an outage or on a first start everything is due at once, so the rate
at which one owner drains a full backlog in batches of 8 (releasing each
batch, as ``runtime.Worker`` does) says how long catching up takes; with
three claimers on PostgreSQL (``FOR UPDATE SKIP LOCKED``) it also says
whether claimers help each other or get in each other's way, and whether any
calendar was handed out twice.

The "sync" between claim and release is a stand-in: one UPDATE that sets
``last_sync_at``, the only thing a real sync leaves that the scheduler reads.
So the figures are the scheduler's alone, not a provider's.

SQLite runs in a temporary file. PostgreSQL runs when
``SYNCD_BENCH_POSTGRES_URL`` (or ``SYNCD_TEST_POSTGRES_URL``) names a server,
in a schema created for the run and dropped after it.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from bench import figures
from syncd.scheduler import Cadence, Slots, claim, enroll, release, settle_hints
from syncd.store import connect, migrate, sessions, transaction
from syncd.store.models import Calendar, Occurrence, Pair, PushChannel

POSTGRES_ENV = ("SYNCD_BENCH_POSTGRES_URL", "SYNCD_TEST_POSTGRES_URL")
ACCOUNT = "bench"
PROVIDER = "google"
#: What one worker takes at once: Google's per-account cap and the default
#: ``sync.concurrency``.
BATCH = 8
CLAIMERS = 3
CADENCE = Cadence()
#: A phase that has not finished by then stops and reports what it did.
PHASE_SECONDS = 10.0
IDLE_SECONDS = 1.5


@dataclass
class Store:
    """A migrated, empty database, and a way to open more engines onto it."""

    label: str
    engine: Engine
    open: Callable[[], Engine]


@contextmanager
def sqlite_store() -> Iterator[Store]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'scheduler.db'}"
        engine = connect(url)
        migrate(engine)
        try:
            yield Store("sqlite", engine, lambda: connect(url))
        finally:
            engine.dispose()


@contextmanager
def postgres_store(url: str) -> Iterator[Store]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = connect(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = connect(url, schema=schema)
    try:
        migrate(engine)
        yield Store("postgres", engine, lambda: connect(url, schema=schema))
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# -- an organization -----------------------------------------------------------------


#: Event copies the engine mirrors per calendar (a 29-day window of a busy
#: person's calendar): a weekly 1:1 (its master and five occurrences) and
#: other meetings. The due query probes them for "a 1:1 ended since the last sync".
EVENTS = 30


def seed(factory: sessionmaker[Session], calendars: int, now: datetime) -> list[int]:
    """N calendars with what the due query looks at: mirrored events, push channels.

    Every calendar has a weekly 1:1, one occurrence of it and a few other
    meetings ended within the last day, the rest to come; every other
    calendar has a live push channel.
    """
    addresses = [f"p{i:05d}@example.org" for i in range(calendars)]
    enroll(factory, ACCOUNT, PROVIDER, addresses)
    with transaction(factory) as session:
        ids = list(
            session.scalars(
                select(Calendar.id).where(Calendar.account == ACCOUNT).order_by(Calendar.id)
            )
        )
        session.execute(
            insert(Pair),
            [
                {
                    "person_a": addresses[i],
                    "person_b": addresses[min(i + 1, calendars - 1)],
                    "token": f"pair{i:05d}",
                    "created_at": now,
                }
                for i in range(0, calendars, 2)
            ],
        )
        pair_of: dict[str, int] = dict(session.execute(select(Pair.person_a, Pair.id)).all())
        rows: list[dict[str, Any]] = []
        for index, calendar_id in enumerate(ids):
            series = f"series-{index // 2}"
            pair = pair_of[addresses[index - index % 2]]
            for week in range(-1, 5):  # -1: the series master
                start = now - timedelta(days=1) + timedelta(weeks=max(week, 0))
                rows.append(
                    mirrored(calendar_id, f"{series}_{week}", series, start, timedelta(minutes=30))
                    | {"is_master": week < 0, "pair_id": pair, "verdict": "one-on-one"}
                )
            for other in range(EVENTS - 6):  # four within the last day, then every day or so
                start = now + timedelta(hours=(other - 4) * 6 + 1)
                rows.append(
                    mirrored(
                        calendar_id, f"meeting-{index}-{other}", None, start, timedelta(hours=1)
                    )
                )
        session.execute(insert(Occurrence), rows)
        session.execute(
            insert(PushChannel),
            [
                {
                    "calendar_id": calendar_id,
                    "channel_id": f"channel-{calendar_id}",
                    "resource_id": f"resource-{calendar_id}",
                    "token_digest": "0" * 64,
                    "expires": now + timedelta(days=7),
                    "created_at": now,
                }
                for calendar_id in pushed(ids)
            ],
        )
    return ids


def mirrored(
    calendar_id: int, event_id: str, series: str | None, start: datetime, length: timedelta
) -> dict[str, Any]:
    return {
        "calendar_id": calendar_id,
        "event_id": event_id,
        "series_id": series,
        "ical_uid": f"{series or event_id}@example.org",
        "original_start": start,
        "start": start,
        "end": start + length,
        "verdict": "more-than-two-people",
        "pair_id": None,
    }


def pushed(ids: Sequence[int]) -> Sequence[int]:
    return ids[::2]


def settle(factory: sessionmaker[Session], ids: Sequence[int], now: datetime, state: str) -> None:
    """Unlease every calendar and date its last sync for ``state``.

    ``quiet``: everything synced within the last three minutes, inside the
    shortest jittered poll interval (four minutes): nothing due, and nothing
    even close. ``steady``: what a running deployment looks like, nothing
    due either: calendars without push synced within their shortest poll
    interval (four minutes), those with a live channel within theirs
    (4.8 hours of ``push_poll``). ``due``: everything synced an hour or so
    longer ago than any interval.
    """
    live = set(pushed(ids))

    def ago(calendar_id: int, share: float) -> timedelta:
        if state == "due":
            return CADENCE.stretched + timedelta(minutes=1 + 60 * share)
        if state == "steady" and calendar_id in live:
            return CADENCE.stretched * share * 0.99
        return timedelta(minutes=3) * share

    with transaction(factory) as session:
        session.execute(
            update(Calendar),
            [
                {
                    "id": calendar_id,
                    "last_sync_at": now - ago(calendar_id, (i * 7919 % len(ids)) / len(ids)),
                    "next_sync_at": None,
                    "lease_owner": None,
                    "lease_until": None,
                    "due_hint": None,
                }
                for i, calendar_id in enumerate(ids)
            ],
        )
    # what a worker does on start: judge every calendar once, so claims read only the due
    settle_hints(factory, now, CADENCE, [ACCOUNT])


def synced(factory: sessionmaker[Session], calendar_ids: Sequence[int], now: datetime) -> None:
    """The stand-in for a sync: what it leaves that the scheduler reads."""
    with transaction(factory) as session:
        session.execute(
            update(Calendar)
            .where(Calendar.id.in_(calendar_ids))
            .values(last_sync_at=now, due_hint=None)
        )


def slots() -> Slots:
    return Slots({ACCOUNT: BATCH}, limit=BATCH)


# -- (a), (d): the idle claim -----------------------------------------------------------


@dataclass
class Counted:
    """What reached the database during some claims, seen through SQLAlchemy's events."""

    statements: list[tuple[str, Any]] = field(default_factory=list)
    checkouts: int = 0
    commits: int = 0
    loaded: int = 0  # calendar rows read as candidates (and locked, on PostgreSQL)


@contextmanager
def counting(engine: Engine) -> Iterator[Counted]:
    counted = Counted()

    def statement(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        counted.statements.append((sql, params))

    def checkout(*_: Any) -> None:
        counted.checkouts += 1

    def commit(_: Any) -> None:
        counted.commits += 1

    def loaded(*_: Any) -> None:
        counted.loaded += 1

    hooks: list[tuple[Any, str, Callable[..., None]]] = [
        (engine, "before_cursor_execute", statement),
        (engine.pool, "checkout", checkout),
        (engine, "commit", commit),
        (Calendar, "load", loaded),
    ]
    for target, name, hook in hooks:
        event.listen(target, name, hook)
    try:
        yield counted
    finally:
        for target, name, hook in hooks:
            event.remove(target, name, hook)


def idle_claims(factory: sessionmaker[Session], now: datetime) -> list[float]:
    """Seconds per idle claim, repeated for about IDLE_SECONDS."""
    times: list[float] = []
    until = time.perf_counter() + IDLE_SECONDS
    while time.perf_counter() < until or len(times) < 20:
        started = time.perf_counter()
        got = claim(factory, "idle", now, slots(), CADENCE, [ACCOUNT])
        times.append(time.perf_counter() - started)
        if got:
            raise RuntimeError(f"the idle organization had {len(got)} calendars due")
    return times


SCAN = re.compile(
    r"((?:Parallel )?(?:Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan|Bitmap Index Scan)"
    r"(?: using \w+)? on \w+)"
)


def plan(engine: Engine, sql: str, params: Any) -> str:
    """How the database finds due calendars: its access path for each table, and time."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all()
            return "; ".join(str(row[-1]) for row in rows)
        lines = [row[0] for row in conn.exec_driver_sql(f"EXPLAIN ANALYZE {sql}", params)]
        conn.rollback()  # EXPLAIN ANALYZE of FOR UPDATE takes the locks
    paths = [m.group(1) for line in lines if (m := SCAN.search(line))]
    took = next((line for line in lines if line.startswith("Execution Time")), "")
    return "; ".join(paths) + (f"; {took}" if took else "")


def idle(
    store: Store, factory: sessionmaker[Session], now: datetime, state: str, calendars: int
) -> None:
    times = idle_claims(factory, now)
    rounds = 10
    with counting(store.engine) as counted:
        for _ in range(rounds):
            claim(factory, "idle", now, slots(), CADENCE, [ACCOUNT])
    median = statistics.median(times) * 1000
    p90 = statistics.quantiles(times, n=10)[-1] * 1000
    print(
        f"{store.label:<8} idle claim, {state:<6} {median:7.2f} ms median "
        f"{p90:7.2f} ms p90 ({len(times)} claims)"
    )
    per = {
        "SQL statements": len(counted.statements),
        "connection checkouts": counted.checkouts,
        "commits": counted.commits,
        "calendar rows read": counted.loaded,
    }
    shown = ", ".join(f"{count / rounds:g} {what}" for what, count in per.items())
    print(f"{store.label:<8} idle claim, {state:<6} per claim: {shown}")
    if state == "steady":
        figures.record(store.label, f"idle claim, {calendars} calendars", median, "ms")
        figures.record(
            store.label, f"calendar rows an idle claim reads, {calendars} calendars",
            counted.loaded / rounds, "", 0,
        )  # fmt: skip
        IDLE[(store.label, calendars)] = median
    sql, params = counted.statements[0]
    print(f"{store.label:<8} idle plan, {state:<6} {plan(store.engine, sql, params)}")


# -- (b), (c): draining a backlog ----------------------------------------------------------


@dataclass
class Drained:
    """What claimers handed out: every claimed id, in order, and the time spent."""

    claimed: list[int] = field(default_factory=list)
    claim_seconds: list[float] = field(default_factory=list)  # claims that got calendars
    release_seconds: list[float] = field(default_factory=list)
    empty: int = 0
    elapsed: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def duplicates(self) -> int:
        return len(self.claimed) - len(set(self.claimed))

    def rate(self) -> float:
        return len(self.claimed) / self.elapsed if self.elapsed else 0.0


def claimer(
    factory: sessionmaker[Session],
    owner: str,
    now: datetime,
    total: int,
    drained: Drained,
    deadline: float,
) -> None:
    """Claim, "sync", release, until every calendar was handed out (or time is up)."""
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        got = claim(factory, owner, now, slots(), CADENCE, [ACCOUNT])
        took = time.perf_counter() - started
        ids = [c.calendar_id for c in got]
        with drained.lock:
            drained.claimed.extend(ids)
            left = total - len(set(drained.claimed))
            if got:
                drained.claim_seconds.append(took)
            elif left > 0:
                drained.empty += 1
        if not got:
            if left <= 0:
                return
            time.sleep(0.002)  # the others hold the rest locked for the moment
            continue
        synced(factory, ids, now)
        started = time.perf_counter()
        release(factory, owner, ids)
        with drained.lock:
            drained.release_seconds.append(time.perf_counter() - started)


def drain(factories: Sequence[sessionmaker[Session]], now: datetime, total: int) -> Drained:
    drained = Drained()
    deadline = time.perf_counter() + PHASE_SECONDS
    threads = [
        threading.Thread(
            target=claimer, args=(factory, f"claimer-{k}", now, total, drained, deadline)
        )
        for k, factory in enumerate(factories)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    drained.elapsed = time.perf_counter() - started
    return drained


#: the idle claim's median (ms) per store and organization size, for the scaling ratio
IDLE: dict[tuple[str, int], float] = {}


def scaling() -> None:
    """The idle claim at the largest organization measured over the smallest, per store."""
    for label in sorted({label for label, _ in IDLE}):
        sizes = sorted(size for name, size in IDLE if name == label)
        if len(sizes) > 1:
            small, large = sizes[0], sizes[-1]
            ratio = IDLE[(label, large)] / IDLE[(label, small)]
            # per worker and second, not per calendar: per calendar it falls as N grows
            figures.record(label, f"idle claim {large} / {small} calendars", ratio, "×")


def report_drain(label: str, what: str, drained: Drained, total: int) -> None:
    handed = len(set(drained.claimed))
    cut = "" if handed >= total else f" (stopped after {PHASE_SECONDS:g} s: {handed} of {total})"
    busy = drained.claim_seconds or [0.0]
    print(
        f"{label:<8} {what}: {len(drained.claimed):>5} claims in {drained.elapsed:6.2f} s  "
        f"{len(drained.claimed) / drained.elapsed:7.0f} claims/s{cut}  "
        f"claim {1000 * busy[0]:.1f} ms first, {1000 * statistics.mean(busy):.1f} ms mean; "
        f"release {1000 * statistics.mean(drained.release_seconds or [0.0]):.1f} ms mean"
    )


def run_store(store: Store, calendars: int) -> None:
    now = datetime.now(UTC)
    factory = sessions(store.engine)
    started = time.perf_counter()
    ids = seed(factory, calendars, now)
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE"))  # what autovacuum does on a running deployment
    print(
        f"{store.label:<8} {calendars} calendars, {calendars * EVENTS} events, "
        f"{len(pushed(ids))} push channels: seeded in {time.perf_counter() - started:.1f} s"
    )
    for state in ("quiet", "steady"):
        settle(factory, ids, now, state)
        idle(store, factory, now, state, calendars)

    settle(factory, ids, now, "due")
    one = drain([factory], now, len(ids))
    report_drain(store.label, f"1 owner, batches of {BATCH}", one, len(ids))

    if store.engine.dialect.name != "postgresql":
        return  # SQLite: one process claims; there is nothing to race
    settle(factory, ids, now, "due")
    engines = [store.open() for _ in range(CLAIMERS)]
    try:
        many = drain([sessions(engine) for engine in engines], now, len(ids))
    finally:
        for engine in engines:
            engine.dispose()
    report_drain(store.label, f"{CLAIMERS} claimers", many, len(ids))
    if calendars == max(SIZES):
        one_rate, many_rate = one.rate(), many.rate()
        figures.record(
            store.label, f"drain, 1 claimer, {calendars} calendars", one_rate, "claims/s"
        )
        figures.record(store.label, f"drain, {CLAIMERS} claimers / 1", many_rate / one_rate, "×")
    print(
        f"{store.label:<8} {CLAIMERS} claimers: duplicates: {many.duplicates()}  "
        f"empty claims while work was left: {many.empty}"
    )


def postgres_url() -> str:
    return next((os.environ[name] for name in POSTGRES_ENV if os.environ.get(name)), "")


#: The organization sizes `make bench` compares: CPU per idle claim must not grow with it.
SIZES = (1000, 10000)


def run(calendars: int) -> None:
    with sqlite_store() as store:
        run_store(store, calendars)
    url = postgres_url()
    if not url:
        print(f"postgres skipped: set {POSTGRES_ENV[0]} (or {POSTGRES_ENV[1]}) to a server URL")
        return
    with postgres_store(url) as store:
        run_store(store, calendars)


def organization_size(value: str) -> int:
    """``--calendars``: a whole number of at least two (one pair)."""
    try:
        size = int(value)
    except ValueError:
        size = 0
    if size < 2:
        raise argparse.ArgumentTypeError(f"needs a whole number of at least 2, not {value!r}")
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calendars", type=organization_size, default=2000, help="org size")
    run(parser.parse_args().calendars)


if __name__ == "__main__":
    main()
