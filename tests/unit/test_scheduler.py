"""When a calendar is due: push marks, backoff, polling, and never while awaiting re-auth."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from providers.base import Notification
from providers.memory import MemoryProvider
from syncd import push
from syncd.budget import Budget
from syncd.scheduler import (
    POLL_INTERVAL,
    Cadence,
    Claim,
    Push,
    Slots,
    _judge,
    claim,
    due,
    enroll,
    push_states,
    release,
    renew,
    settle_hints,
    tick,
)
from syncd.store import sessions, transaction
from syncd.store.models import Calendar, PushChannel
from tests.unit.world import ANA, BO, CY, PEOPLE, World, tuesday, weekly

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)


def test_due_follows_marks_backoff_polling_and_reauth(db_engine: Engine) -> None:
    factory = sessions(db_engine)
    rows = {
        "never-synced": {},
        "polled-recently": {"last_sync_at": NOW - timedelta(minutes=1)},
        "poll-interval-passed": {"last_sync_at": NOW - POLL_INTERVAL},
        "pushed": {"last_sync_at": NOW - timedelta(seconds=30), "next_sync_at": NOW},
        "push-debouncing": {"last_sync_at": NOW, "next_sync_at": NOW + timedelta(seconds=2)},
        "backing-off": {
            "last_sync_at": NOW - POLL_INTERVAL,
            "next_sync_at": NOW + timedelta(minutes=4),
        },
        "needs-reauth": {"needs_reauth": True},
    }
    with transaction(factory) as session:
        for name, fields in rows.items():
            session.add(Calendar(account="a", provider="memory", address=name, **fields))

    with transaction(factory) as session:
        names = [row.address for row in due(session, NOW)]

    # asked-for syncs first, then calendars never synced, then the longest-waiting polls
    assert names == ["pushed", "never-synced", "poll-interval-passed"]


def test_workers_starting_together_enroll_each_calendar_once(db_engine: Engine) -> None:
    factory = sessions(db_engine)
    addresses = [f"p{n:02}@example.org" for n in range(40)]
    enroll(factory, "acme", "google", addresses[:10])  # a previous start
    start = threading.Barrier(6)
    failures: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            enroll(factory, "acme", "google", addresses + addresses[:3])
        except BaseException as error:  # noqa: BLE001 - collected for the assertion
            failures.append(error)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    with transaction(factory) as session:
        enrolled = list(session.scalars(select(Calendar.address).order_by(Calendar.address)))
    assert enrolled == addresses


# -- leases ------------------------------------------------------------------------

DAY = Cadence(poll=timedelta(days=1), max_poll=timedelta(days=2), lease=timedelta(minutes=2))
MEMORY = Slots({"memory": 10})


def _calendars(engine: Engine, *names: str, provider: str = "memory", **fields: object) -> None:
    with transaction(sessions(engine)) as session:
        for name in names:
            # one account per provider here: slots are per account
            session.add(Calendar(account=provider, provider=provider, address=name, **fields))


def _addresses(claims: list[Claim]) -> list[str]:
    return [claim.address for claim in claims]


def test_a_claimed_calendar_is_not_claimed_again_until_its_lease_runs_out(
    db_engine: Engine,
) -> None:
    factory = sessions(db_engine)
    _calendars(db_engine, "ana", "bo")

    first = claim(factory, "w1", NOW, MEMORY, DAY)
    assert _addresses(first) == ["ana", "bo"]
    assert claim(factory, "w2", NOW + timedelta(seconds=30), MEMORY, DAY) == []

    # w1 died: nothing renews, and after the lease the calendars are w2's
    taken = claim(factory, "w2", NOW + DAY.lease, MEMORY, DAY)
    assert _addresses(taken) == ["ana", "bo"]
    with transaction(factory) as session:
        assert {row.lease_owner for row in session.scalars(select(Calendar))} == {"w2"}


def test_renew_and_release_only_touch_the_owners_own_leases(db_engine: Engine) -> None:
    factory = sessions(db_engine)
    _calendars(db_engine, "ana", "bo")
    ana, bo = claim(factory, "w1", NOW, MEMORY, DAY)
    later = NOW + DAY.lease
    stolen = claim(factory, "w2", later, Slots({"memory": 1}), DAY)  # w1's lease ran out
    assert _addresses(stolen) == ["ana"]

    assert renew(factory, "w1", [ana.calendar_id, bo.calendar_id], later + DAY.lease) == {
        bo.calendar_id
    }
    release(factory, "w1", [ana.calendar_id, bo.calendar_id])
    with transaction(factory) as session:
        owners = {row.address: row.lease_owner for row in session.scalars(select(Calendar))}
    assert owners == {"ana": "w2", "bo": None}


def test_slots_bound_each_account_the_total_and_a_busy_mailbox(db_engine: Engine) -> None:
    factory = sessions(db_engine)
    _calendars(db_engine, "g1", "g2", "g3", provider="google")
    _calendars(db_engine, "m1", "m2", provider="microsoft")

    taken = claim(factory, "w", NOW, Slots({"google": 2, "microsoft": 1}), DAY)
    assert sorted(_addresses(taken)) == ["g1", "g2", "m1"]

    rest = claim(factory, "v", NOW, Slots({"google": 5, "microsoft": 5}, limit=1), DAY)
    assert len(rest) == 1

    with transaction(factory) as session:
        session.execute(update(Calendar).values(lease_owner=None, lease_until=None))
    busy = claim(factory, "u", NOW, Slots({"google": 5, "microsoft": 5}, frozenset({"g1"})), DAY)
    assert "g1" not in _addresses(busy) and len(busy) == 4


def test_concurrent_claimers_never_win_the_same_calendar(db_engine: Engine) -> None:
    factory = sessions(db_engine)
    names = [f"c{i:02d}" for i in range(40)]
    _calendars(db_engine, *names)
    won: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def claimer(owner: str) -> None:
        barrier.wait()
        mine: list[str] = []
        while batch := claim(factory, owner, NOW, Slots({"memory": 3}), DAY):
            mine.extend(_addresses(batch))
        won[owner] = mine

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    every = [name for mine in won.values() for name in mine]
    assert sorted(every) == names  # each calendar claimed exactly once


# -- cadence -------------------------------------------------------------------------


def test_jitter_spreads_polls_within_a_fifth_of_the_interval() -> None:
    cadence = Cadence()
    intervals = {cadence.interval(calendar_id, Push.NONE) for calendar_id in range(200)}
    assert min(intervals) >= cadence.poll * (1 - cadence.jitter)
    assert max(intervals) <= cadence.poll
    assert len(intervals) > 150  # spread, not a few buckets
    assert cadence.interval(7, Push.NONE) == cadence.interval(7, Push.NONE)  # stable


def _channel(session: Session, calendar: str, token: str = "secret", **fields: Any) -> PushChannel:
    row = session.scalars(select(Calendar).where(Calendar.address == calendar)).one()
    channel = PushChannel(
        calendar_id=row.id,
        channel_id=f"ch-{calendar}",
        resource_id="r",
        token_digest=push.digest(token),
        **{"expires": NOW + timedelta(days=1), "created_at": NOW - timedelta(days=1), **fields},
    )
    session.add(channel)
    return channel


def test_a_healthy_channel_stretches_the_poll_and_one_that_missed_a_change_does_not(
    db_engine: Engine,
) -> None:
    factory = sessions(db_engine)
    cadence = Cadence(
        poll=timedelta(minutes=5),
        max_poll=timedelta(hours=1),
        push_poll=timedelta(hours=6),
        jitter=0,
    )
    names = ("polled", "healthy", "doubted", "heard-again", "expired")
    _calendars(db_engine, *names, last_sync_at=NOW - timedelta(minutes=30))
    with transaction(factory) as session:
        _channel(session, "healthy")
        _channel(session, "doubted", missed_at=NOW - timedelta(hours=2))
        _channel(
            session,
            "heard-again",
            missed_at=NOW - timedelta(hours=2),
            heard_at=NOW - timedelta(hours=1),
        )
        _channel(session, "expired", expires=NOW - timedelta(minutes=1))

    def due_after(elapsed: timedelta) -> set[str]:
        with transaction(factory) as session:
            return {row.address for row in due(session, NOW + elapsed, cadence)}

    assert due_after(timedelta(0)) == {"polled", "expired"}
    assert due_after(timedelta(minutes=30)) == {"polled", "expired", "doubted"}
    assert due_after(timedelta(hours=5)) == {"polled", "expired", "doubted"}
    assert due_after(timedelta(hours=5, minutes=30)) == set(names)


def test_a_poll_that_finds_an_unannounced_change_doubts_the_channel_until_it_is_heard(
    db_engine: Engine,
) -> None:
    world = World(db_engine)
    weekly(world, ANA, BO)
    world.sync()
    cadence = Cadence(
        poll=timedelta(minutes=5),
        max_poll=timedelta(hours=1),
        push_poll=timedelta(hours=6),
        jitter=0,
    )
    with world.session() as session:
        _channel(session, ANA, created_at=world.now - timedelta(minutes=1))
    world.now += timedelta(hours=6)
    report = world.sync()  # the stretched poll: nothing happened, nothing doubted
    assert report.unnotified == 0

    start = world.now + timedelta(days=2)
    world.provider.create_event(ANA, [ANA, BO], "ad hoc", start, start + timedelta(minutes=20))
    world.now += timedelta(hours=6)  # no notification came: the next poll finds it
    report = world.sync()
    assert report.unnotified == 1

    def ana_push() -> Push:
        with world.session() as session:
            row = session.scalars(select(Calendar).where(Calendar.address == ANA)).one()
            return push_states(session, [row.id], world.now).get(row.id, Push.NONE)

    assert ana_push() is Push.DOUBTED
    world.now += timedelta(minutes=1)  # then a notification arrives: the channel works
    with world.session() as session:
        channel = session.scalars(select(PushChannel)).one()
        notice = push.accept(session, Notification(channel.channel_id, "secret"), world.now)
    assert ana_push() is Push.HEALTHY and notice.outcome is not push.Outcome.UNKNOWN
    assert cadence.interval(1, Push.HEALTHY) == timedelta(hours=6)


def test_the_end_of_a_1on1_makes_its_calendar_due_for_the_carry_over(db_engine: Engine) -> None:
    world = World(db_engine)
    uid = weekly(world, ANA, BO)  # Tuesdays 10:00-10:30, from tomorrow
    world.sync()
    cadence = Cadence(poll=timedelta(days=3), max_poll=timedelta(days=3), jitter=0)

    def due_at(moment: datetime) -> set[str]:
        with transaction(world.factory) as session:
            return {row.address for row in due(session, moment, cadence)}

    meeting_end = tuesday(0) + timedelta(minutes=30)
    assert due_at(meeting_end - timedelta(minutes=1)) == set()
    assert due_at(meeting_end) == {ANA, BO}  # both hold a copy of the ended 1:1

    world.now = meeting_end
    # the edit marks Ana's calendar (the organizer's) due after the debounce, as the page does
    world.add_action_item(uid, tuesday(0), "send the notes", owner=BO, author=ANA)
    report = tick(world.factory, {"acme": world.syncer}, meeting_end + push.DEBOUNCE, cadence)
    assert report.calendars == 2
    assert "send the notes" in (world.block_in(ANA, uid, tuesday(1)) or "")
    assert due_at(meeting_end + timedelta(minutes=1)) == set()


def test_a_rewrite_the_mail_budget_deferred_makes_its_calendar_due_at_the_refresh(
    db_engine: Engine,
) -> None:
    """On a calendar whose writes mail the attendees an edit days ahead waits, then lands."""
    world = World(db_engine, MemoryProvider(PEOPLE, page_size=7, mails_attendees=True))
    uid = weekly(world, ANA, BO)  # Tuesdays 10:00-10:30, from tomorrow
    world.sync()  # the first blocks
    cadence = Cadence(poll=timedelta(days=3), max_poll=timedelta(days=3), jitter=0)

    def due_at(moment: datetime) -> set[str]:
        with transaction(world.factory) as session:
            return {row.address for row in due(session, moment, cadence)}

    world.now += timedelta(hours=1)
    world.add_talking_point(uid, tuesday(0), "book the room", BO)
    report = tick(world.factory, {"acme": world.syncer}, world.now + push.DEBOUNCE, cadence)
    assert report.deferred == 1 and report.writes == 0
    assert "book the room" not in (world.block_in(ANA, uid, tuesday(0)) or "")

    refresh = tuesday(0) - Budget().lead
    assert due_at(refresh - timedelta(minutes=1)) == set()
    assert due_at(refresh) == {ANA}
    world.now = refresh
    report = tick(world.factory, {"acme": world.syncer}, refresh, cadence)
    assert report.writes == 1 and report.attendee_mails == 1
    assert "book the room" in (world.block_in(ANA, uid, tuesday(0)) or "")
    assert due_at(refresh + timedelta(minutes=1)) == set()


def test_needs_reauth_is_never_due_and_never_claimed(db_engine: Engine) -> None:
    factory = sessions(db_engine)
    _calendars(db_engine, "revoked", needs_reauth=True, next_sync_at=NOW)
    assert claim(factory, "w", NOW, MEMORY, DAY) == []


def test_a_calendar_no_longer_watched_keeps_its_row_but_is_not_claimed(db_engine: Engine) -> None:
    factory = sessions(db_engine)
    _calendars(db_engine, "stays", "left")  # "left" has left the directory
    taken = claim(factory, "w", NOW, MEMORY, DAY, watching={"memory": {"stays"}})
    assert _addresses(taken) == ["stays"]
    with transaction(factory) as session:
        assert {row.address for row in session.scalars(select(Calendar))} == {"stays", "left"}


def test_one_accounts_backlog_never_fills_another_accounts_claim(db_engine: Engine) -> None:
    factory = sessions(db_engine)
    _calendars(db_engine, *(f"old{i:02d}" for i in range(40)), provider="google")
    _calendars(db_engine, "fresh", provider="microsoft", last_sync_at=NOW - timedelta(days=2))
    taken = claim(factory, "w", NOW, Slots({"google": 1, "microsoft": 1}), DAY)
    assert sorted(_addresses(taken)) == ["fresh", "old00"]


def test_a_claim_locks_only_a_window_of_the_backlog(db_engine: Engine) -> None:
    factory = sessions(db_engine)
    _calendars(db_engine, *(f"c{i:03d}" for i in range(100)))
    statements: list[str] = []

    def remember(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(db_engine, "before_cursor_execute", remember)
    try:
        assert len(claim(factory, "w", NOW, Slots({"memory": 2}), DAY)) == 2
    finally:
        event.remove(db_engine, "before_cursor_execute", remember)
    # the query that reads (and on PostgreSQL locks) candidate rows, whole
    reads = [s for s in statements if s.lstrip().startswith("SELECT calendars.id, calendars.")]
    assert reads and all("LIMIT" in s.upper() for s in reads)


# -- the due hint: a claim reads only what can be due ---------------------------


def _rows_read(factory: sessionmaker[Session], work: Callable[[], object]) -> int:
    """How many calendar rows ``work`` loads from the database."""
    loaded: list[object] = []

    def count(session: Session, instance: object) -> None:
        if isinstance(instance, Calendar):
            loaded.append(instance)

    event.listen(factory, "loaded_as_persistent", count)
    try:
        work()
    finally:
        event.remove(factory, "loaded_as_persistent", count)
    return len(loaded)


def test_once_judged_a_calendar_that_is_not_due_is_not_read_again_until_its_hint(
    db_engine: Engine,
) -> None:
    factory = sessions(db_engine)
    cadence = Cadence(poll=timedelta(minutes=5), max_poll=timedelta(hours=1), jitter=0)
    names = [f"p{n:03d}" for n in range(120)]
    _calendars(db_engine, *names, last_sync_at=NOW - timedelta(minutes=1))

    # each claim judges a window of them; a few claims have judged all (a start judges
    # all at once: settle_hints)
    for _ in range(3):
        assert claim(factory, "w1", NOW, MEMORY, cadence) == []
    with transaction(factory) as session:
        hints = {row.due_hint for row in session.scalars(select(Calendar))}
    assert hints == {NOW + timedelta(minutes=4)}  # each one's next poll
    with transaction(factory) as session:
        session.execute(update(Calendar).values(due_hint=None))
    settle_hints(factory, NOW, cadence, ["memory"], chunk=50)
    with transaction(factory) as session:
        assert {row.due_hint for row in session.scalars(select(Calendar))} == hints

    # an idle claim now reads no calendar row at all, however many there are
    assert (
        _rows_read(
            factory, lambda: claim(factory, "w1", NOW + timedelta(minutes=1), MEMORY, cadence)
        )
        == 0
    )

    with transaction(factory) as session:  # a webhook marks one: only that one is read
        push.mark_due(
            session.scalars(select(Calendar).where(Calendar.address == "p007")).one(), NOW
        )
    later = NOW + push.DEBOUNCE
    got: list[Claim] = []
    assert (
        _rows_read(factory, lambda: got.extend(claim(factory, "w1", later, MEMORY, cadence))) == 1
    )
    assert _addresses(got) == ["p007"]


def test_the_hint_never_hides_a_due_calendar(db_engine: Engine) -> None:
    """Two simulated days of polls, edits, meeting ends and a channel that expires: at every
    step the calendars found through the hints are exactly those a judge of every row finds."""
    world = World(db_engine)
    uid = weekly(world, ANA, BO)
    start = tuesday(0) + timedelta(hours=3)
    world.provider.create_event(BO, [BO, CY], "Bo / Cy", start, start + timedelta(minutes=45))
    world.sync()
    cadence = Cadence(
        poll=timedelta(minutes=30),
        max_poll=timedelta(hours=2),
        push_poll=timedelta(hours=8),
        jitter=0.2,
    )
    with world.session() as session:
        _channel(session, ANA, expires=world.now + timedelta(hours=20))
        _channel(session, CY, created_at=world.now, expires=world.now + timedelta(days=3))
    slots = Slots({"acme": 3})
    step = timedelta(minutes=7)
    claimed = 0
    for n in range(int(timedelta(days=2) / step)):
        world.now += step
        if n % 40 == 13:
            world.add_talking_point(uid, tuesday(0), f"point {n}", BO)
        with world.session() as session:
            every = list(session.scalars(select(Calendar)))
            oracle = {
                row.address for row in _judge(session, every, world.now, cadence, refresh=False)
            }
            hinted = {row.address for row in due(session, world.now, cadence)}
        assert hinted == oracle, world.now
        leases = claim(world.factory, "w1", world.now, slots, cadence)
        assert {lease.address for lease in leases} == oracle, world.now
        for lease in leases:
            world.syncer.sync(lease.address, world.now)
        release(world.factory, "w1", [lease.calendar_id for lease in leases])
        claimed += len(leases)
    # polls, the edits' marks and the meeting ends: it did sync, on every calendar
    assert claimed > 40


def test_an_edit_made_between_a_claim_and_its_sync_still_reaches_the_invite(
    db_engine: Engine,
) -> None:
    """The claim hands the sync what it read of the row; a mark set after that read stays."""
    world = World(db_engine)
    uid = weekly(world, ANA, BO)  # Tuesdays 10:00-10:30, from tomorrow
    world.settle()
    cadence = Cadence(poll=timedelta(minutes=5), max_poll=timedelta(minutes=5), jitter=0)
    world.advance(minutes=10)  # every calendar's poll is due, nothing changed
    claims = claim(world.factory, "w1", world.now, Slots({"acme": 10}), cadence)
    assert {c.address for c in claims} == {ANA, BO, CY}

    world.add_talking_point(uid, tuesday(0), "the offsite budget", BO)  # marks Ana's calendar
    for claimed in claims:  # the syncs run on what the claim read: no mark yet
        world.syncer.sync(claimed.address, world.now, claimed.calendar_id, claimed.state)
    release(world.factory, "w1", [c.calendar_id for c in claims])

    # the mark outlived the syncs that never saw it: the next claim takes the calendar
    tick(world.factory, {"acme": world.syncer}, world.now + push.DEBOUNCE, cadence)
    assert "the offsite budget" in (world.block_in(ANA, uid, tuesday(0)) or "")
