"""Scenarios a person would notice, end to end on the memory provider."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from providers.base import AuthRevoked, PreconditionFailed, QuotaExceeded, RateLimited, Transient
from providers.memory import MemoryProvider
from providers.model import Attendee, ChangePage, Event, EventType, Window
from syncd import agenda, detect, push
from syncd.engine import CalendarSync
from syncd.store.models import ActionItem, Calendar, Meeting, WriteLog
from tests.unit.world import ANA, BO, CY, MONDAY, ROOM, World, tuesday, weekly


@pytest.fixture
def world(db_engine: Engine) -> World:
    return World(db_engine)


def test_new_weekly_series_gets_a_block_in_its_next_two_occurrences_only(world: World) -> None:
    uid = weekly(world)
    report = world.sync()

    assert report.writes == 2
    assert {w.calendar for w in world.provider.writes} == {ANA}  # organizer's copy only
    for week in (0, 1):
        text = world.block_in(ANA, uid, tuesday(week))
        assert text is not None
        assert world.meeting(uid, tuesday(week)).token in text
        # the attendee sees the same block through the organizer's update
        assert world.block_in(BO, uid, tuesday(week)) == text
    for week in (2, 3):
        assert world.block_in(ANA, uid, tuesday(week)) is None
    # a new pair starts from the template, in its first meeting
    assert "What is top of mind?" in (world.block_in(ANA, uid, tuesday(0)) or "")
    assert "What is top of mind?" not in (world.block_in(ANA, uid, tuesday(1)) or "")
    tokens = {world.meeting(uid, tuesday(w)).token for w in (0, 1)}
    assert len(tokens) == 2 and all(len(t) >= 22 for t in tokens)


def test_second_sync_makes_zero_writes(world: World) -> None:
    weekly(world)
    world.sync()
    writes = len(world.provider.writes)

    report = world.sync()  # our own writes come back as changes here

    assert report.writes == 0
    assert len(world.provider.writes) == writes
    assert world.sync().writes == 0


def test_an_unchanged_calendar_costs_one_changes_call_and_no_reads(world: World) -> None:
    weekly(world)
    world.settle()
    before = len(world.provider.requests)

    world.sync()

    ops = [r.op for r in world.provider.requests[before:]]
    assert ops.count("changes") == len(world.provider.calendars())
    assert "get" not in ops and "update_description" not in ops


def test_the_horizon_advances_when_a_meeting_is_over(world: World) -> None:
    uid = weekly(world)
    world.settle()

    world.advance(days=2)  # Wednesday: week 0 is over
    world.settle()

    assert world.block_in(ANA, uid, tuesday(2)) is not None
    assert world.block_in(ANA, uid, tuesday(3)) is None


def test_horizon_days_caps_a_biweekly_series(world: World) -> None:
    from providers.memory import Recurrence

    first = tuesday(0)
    uid = world.provider.create_event(
        ANA, [ANA, BO], "Biweekly", first, first + timedelta(hours=1),
        recurrence=Recurrence(interval_days=14),
    )  # fmt: skip
    world.restart(horizon_days=10)
    world.sync()

    assert world.block_in(ANA, uid, first) is not None
    assert world.block_in(ANA, uid, first + timedelta(days=14)) is None


def test_ad_hoc_event_joins_the_pair_and_shows_the_same_open_items(world: World) -> None:
    uid = weekly(world)
    world.settle()
    world.add_action_item(uid, tuesday(0), "draft the mentoring plan", owner=ANA, author=BO)
    world.advance(days=1, hours=3)  # Tuesday 11:00: the 1:1 is over
    adhoc_start = world.now + timedelta(days=1)
    adhoc = world.provider.create_event(
        BO, [BO, ANA.upper()], "quick sync", adhoc_start, adhoc_start + timedelta(minutes=15)
    )
    world.settle()

    adhoc_block = world.block_in(BO, adhoc)
    series_block = world.block_in(ANA, uid, tuesday(1))
    assert adhoc_block is not None and series_block is not None
    assert "draft the mentoring plan" in adhoc_block
    assert "draft the mentoring plan" in series_block
    assert world.meeting(adhoc).pair_id == world.meeting(uid, tuesday(0)).pair_id


def test_action_item_carries_over_after_the_meeting_and_leaves_when_done(world: World) -> None:
    uid = weekly(world)
    world.settle()
    item_id = world.add_action_item(uid, tuesday(0), "intro to the data team", owner=BO, author=ANA)
    world.settle()
    assert "intro to the data team" not in (world.block_in(ANA, uid, tuesday(1)) or "")

    world.advance(days=1, hours=3)  # the meeting is over
    world.settle()
    for week in (1, 2):
        text = world.block_in(ANA, uid, tuesday(week))
        assert text is not None and "intro to the data team" in text
        assert "Nov 24" in text  # its origin date

    with world.session() as session:
        done = session.get_one(ActionItem, item_id)
        agenda.set_action_item_done(session, done, BO, world.now)
        push.mark_pair_due(session, done.meeting.pair_id, world.now)  # as the page does
    world.settle()
    for week in (1, 2):
        assert "intro to the data team" not in (world.block_in(ANA, uid, tuesday(week)) or "")


def test_moved_occurrence_keeps_its_agenda_and_cancelled_one_gets_no_write(world: World) -> None:
    world.restart(horizon_days=21)  # so that the count, not the days, limits the horizon
    uid = weekly(world)
    world.settle()
    assert world.block_in(ANA, uid, tuesday(2)) is None
    token = world.meeting(uid, tuesday(0)).token
    new_start = tuesday(0) + timedelta(days=1, hours=3)
    world.provider.move_occurrence(uid, tuesday(0), new_start, new_start + timedelta(minutes=30))
    world.provider.cancel_occurrence(uid, tuesday(1))
    writes = len(world.provider.writes)

    world.settle()

    moved = world.meeting(uid, tuesday(0))
    assert moved.token == token and moved.start == new_start
    assert token in (world.block_in(ANA, uid, tuesday(0)) or "")
    assert world.meeting(uid, tuesday(1)).cancelled
    new_writes = world.provider.writes[writes:]
    cancelled_id = world.provider.copy_id(ANA, uid, tuesday(1))
    assert all(w.event_id != cancelled_id for w in new_writes)
    # the cancelled week frees its place in the horizon for week 2
    assert world.block_in(ANA, uid, tuesday(2)) is not None


def test_a_rescheduled_ad_hoc_meeting_keeps_its_agenda(world: World) -> None:
    start = tuesday(0)
    uid = world.provider.create_event(ANA, [ANA, BO], "chat", start, start + timedelta(minutes=20))
    world.settle()
    token = world.meeting(uid).token
    later = start + timedelta(days=2)
    world.provider.move_occurrence(uid, start, later, later + timedelta(minutes=20))

    world.settle()

    assert world.meeting(uid).token == token and world.meeting(uid).start == later
    assert token in (world.block_in(ANA, uid) or "")


def test_text_people_typed_survives_every_rewrite(world: World) -> None:
    above = "Bring the Q3 numbers.\r\nRoom: 4th floor  \r\n"
    uid = weekly(world, description=above)
    world.settle()
    occurrence = world.provider.copy_id(ANA, uid, tuesday(1))
    current = world.provider.description(ANA, occurrence)
    world.provider.edit_description(ANA, occurrence, current + "\r\nPS: I'll be 5 min late ✨")
    with world.session() as session:
        meeting = agenda.meeting_by_token(session, world.meeting(uid, tuesday(1)).token)
        assert meeting is not None
        agenda.add_talking_point(session, meeting, "Hiring plan", BO, world.now)

    world.settle()

    body = world.body(ANA, uid, tuesday(1))
    assert body.startswith(above)
    assert body.endswith("\r\nPS: I'll be 5 min late ✨")
    assert "Hiring plan (bo)" in (world.block_in(ANA, uid, tuesday(1)) or "")


def test_concurrent_edit_between_read_and_write_is_not_lost(world: World) -> None:
    uid = weekly(world, description="agenda draft")
    occurrence = world.provider.copy_id(ANA, uid, tuesday(0))
    edited = []

    def person_types(calendar: str, event_id: str) -> None:
        if event_id == occurrence and not edited:
            edited.append(event_id)
            body = world.provider.description(calendar, event_id)
            world.provider.edit_description(calendar, event_id, body + "\nadded by Ana just now")

    world.provider.faults.before_write(person_types)
    report = world.settle()

    body = world.body(ANA, uid, tuesday(0))
    assert "added by Ana just now" in body and body.startswith("agenda draft")
    assert world.block_in(ANA, uid, tuesday(0)) is not None
    assert report.conflicts == 1
    sent = [r for r in world.provider.requests if r.op == "update_description"]
    assert sent[0].outcome == "PreconditionFailed"


def ana_ops(world: World) -> list[tuple[str, str]]:
    """The calls made on Ana's calendar (the organizer's, the one written), with outcomes."""
    return [(r.op, r.outcome) for r in world.provider.requests if r.calendar == ANA]


def test_an_agenda_edit_is_written_on_the_text_last_read_without_a_get(world: World) -> None:
    uid = weekly(world, description="bring the numbers")
    world.settle()
    world.provider.requests.clear()

    world.now += timedelta(hours=1)
    world.add_talking_point(uid, tuesday(0), "Hiring plan", BO)
    world.sync()

    assert ana_ops(world) == [("changes", "ok"), ("update_description", "ok")]
    assert world.body(ANA, uid, tuesday(0)).startswith("bring the numbers")
    assert "Hiring plan (bo)" in (world.block_in(ANA, uid, tuesday(0)) or "")


def test_a_new_process_reads_a_copy_once_before_it_writes_it(world: World) -> None:
    uid = weekly(world)
    world.settle()
    world.restart()  # nothing of the text last read survives the process
    world.provider.requests.clear()

    world.add_talking_point(uid, tuesday(0), "Hiring plan", BO)
    world.sync()

    assert ana_ops(world) == [("changes", "ok"), ("get", "ok"), ("update_description", "ok")]
    assert "Hiring plan (bo)" in (world.block_in(ANA, uid, tuesday(0)) or "")


def test_a_text_changed_since_it_was_read_is_re_read_after_the_412_and_kept(
    world: World,
) -> None:
    world.restart(max_write_attempts=1)  # the try on the text held costs no attempt
    uid = weekly(world, description="draft")
    world.settle()
    occurrence = world.provider.copy_id(ANA, uid, tuesday(0))
    world.provider.requests.clear()

    def ana_types(calendar: str, event_id: str) -> None:
        assert (calendar, event_id) == (ANA, occurrence)
        body = world.provider.description(calendar, event_id)
        world.provider.edit_description(calendar, event_id, body + "\nadded by Ana just now")

    world.add_talking_point(uid, tuesday(0), "Hiring plan", BO)
    world.provider.faults.before_write(ana_types, times=1)  # after the pull, before the write
    report = world.sync()

    assert ana_ops(world)[1:] == [
        ("update_description", "PreconditionFailed"),
        ("get", "ok"),
        ("update_description", "ok"),
    ]
    assert report.conflicts == 1 and not report.errors
    body = world.body(ANA, uid, tuesday(0))
    assert "added by Ana just now" in body and "Hiring plan (bo)" in body


def test_cursor_expiry_recovers_and_sweeps_a_deletion_made_in_the_gap(world: World) -> None:
    uid = weekly(world)
    adhoc_start = tuesday(0) + timedelta(days=2)
    adhoc = world.provider.create_event(
        ANA, [ANA, BO], "ad hoc", adhoc_start, adhoc_start + timedelta(minutes=20)
    )
    world.settle()
    assert world.block_in(ANA, adhoc) is not None

    world.provider.delete_event(adhoc)
    world.provider.faults.expire_cursors(ANA)
    world.provider.faults.expire_cursors(BO)
    report = world.settle()

    assert report.full_syncs >= 2 and report.errors == []
    with world.session() as session:
        from syncd.store.models import Occurrence

        left = session.scalars(select(Occurrence.ical_uid).distinct()).all()
    assert adhoc not in left and uid in left
    assert world.sync().writes == 0


@pytest.mark.parametrize(
    ("attendees", "kw"),
    [
        pytest.param([ANA, BO, CY], {}, id="three-people"),
        pytest.param([ANA, ROOM], {}, id="room-booking"),
        pytest.param([ANA, BO], {"all_day": True}, id="all-day"),
        pytest.param([ANA, BO], {"event_type": EventType.OUT_OF_OFFICE}, id="out-of-office"),
        pytest.param([ANA, BO], {"title": "Ana / Bo #noagenda"}, id="opt-out-title"),
        pytest.param([ANA, BO], {"description": "<p>#NoAgenda</p>", "html": True}, id="opt-out"),
    ],
)
def test_events_that_are_not_1on1s_get_no_block(world: World, attendees, kw) -> None:
    start = tuesday(0)
    kw.setdefault("title", "Sync")
    end = start + (timedelta(days=1) if kw.get("all_day") else timedelta(minutes=30))
    uid = world.provider.create_event(ANA, attendees, start=start, end=end, **kw)

    report = world.sync()

    assert report.writes == 0
    assert world.block_in(ANA, uid) is None
    assert sum(report.skipped.values()) >= 1


def test_a_1on1_with_a_room_booked_still_gets_its_block(world: World) -> None:
    start = tuesday(0)
    room = Attendee(ROOM, is_resource=True)
    uid = world.provider.create_event(
        ANA, [ANA, BO, room], "Ana / Bo", start, start + timedelta(minutes=30)
    )
    world.sync()
    assert world.block_in(ANA, uid) is not None


def test_opting_out_later_removes_the_block_and_keeps_user_text(world: World) -> None:
    start = tuesday(0)
    uid = world.provider.create_event(
        ANA, [ANA, BO], "Ana / Bo", start, start + timedelta(minutes=30), description="notes"
    )
    world.settle()
    copy = world.provider.copy_id(ANA, uid)
    world.provider.edit_description(
        ANA, copy, world.provider.description(ANA, copy) + "\n#noagenda"
    )

    world.settle()

    body = world.body(ANA, uid)
    assert world.block_in(ANA, uid) is None
    assert body.startswith("notes") and "#noagenda" in body
    before = len(world.provider.requests)
    world.sync()
    assert {r.op for r in world.provider.requests[before:]} <= {"calendars", "changes"}


def test_past_occurrences_are_never_written(world: World) -> None:
    start = MONDAY - timedelta(hours=3)
    uid = world.provider.create_event(
        ANA, [ANA, BO], "earlier today", start, start + timedelta(hours=1)
    )
    world.sync()
    assert world.block_in(ANA, uid) is None
    assert world.provider.writes == []


def test_rate_limit_honours_retry_after_and_transient_errors_retry(world: World) -> None:
    uid = weekly(world)
    world.provider.faults.fail("changes", RateLimited(retry_after=3), times=1)
    world.provider.faults.fail("update_description", Transient("502"), times=1)

    report = world.settle()

    assert 3 in world.sleeps
    assert report.errors == []
    assert world.block_in(ANA, uid, tuesday(0)) is not None


def test_a_provider_that_keeps_failing_is_tried_retry_attempts_times_with_doubling_waits(
    world: World,
) -> None:
    weekly(world)
    world.provider.faults.fail("changes", Transient("503"), times=10)

    report = world.sync()

    assert [e for e in report.errors if ANA in e]  # given up on, recorded, not raised
    tries = world.policy.retry_attempts
    waits = world.sleeps[: tries - 1]  # Ana's calendar is synced first
    assert len(waits) == tries - 1
    for attempt, wait in enumerate(waits, start=1):
        assert 0.5 * 2 ** (attempt - 1) <= wait <= 0.5 * 2 ** (attempt - 1) + 1


def test_one_failing_account_never_stops_the_others(db_engine: Engine) -> None:
    world = World(db_engine)
    uid = weekly(world)
    broken = MemoryProvider([CY])
    broken.faults.fail("changes", AuthRevoked("invalid_grant"), times=100)
    other = CalendarSync(broken, world.factory, world.policy, account="other", sleep=lambda s: None)

    failed = other.sync(CY, world.now)
    report = world.sync()

    assert failed.errors and "re-auth" in failed.errors[0]
    assert report.writes == 2 and world.block_in(ANA, uid, tuesday(0)) is not None
    with world.session() as session:
        row = session.scalars(select(Calendar).where(Calendar.account == "other")).one()
        assert row.needs_reauth and row.last_error and "AuthRevoked" in row.last_error


def test_precondition_failures_forever_give_up_without_damage(world: World) -> None:
    uid = weekly(world, description="keep me")
    world.provider.faults.fail("update_description", PreconditionFailed(), times=1000)

    report = world.sync()

    assert report.writes == 0 and report.errors
    assert world.body(ANA, uid, tuesday(0)) == "keep me"


def test_dry_run_plans_but_never_writes(world: World) -> None:
    weekly(world)
    world.restart(dry_run=True)
    report = world.sync()
    assert report.planned == 2 and report.writes == 0 and world.provider.writes == []


def test_every_write_is_logged_with_the_etag_it_was_conditional_on(world: World) -> None:
    weekly(world)
    world.sync()
    sent = [r for r in world.provider.requests if r.op == "update_description"]
    with world.session() as session:
        logged = session.scalars(select(WriteLog).order_by(WriteLog.id)).all()
        meetings = session.scalar(select(func.count()).select_from(Meeting))
    assert [entry.etag_before for entry in logged] == [r.etag for r in sent]
    assert all(entry.outcome == "written" for entry in logged)
    assert meetings and meetings >= 2


class Garbling(MemoryProvider):
    """Hands over events titled "broken" the way a buggy adapter or server might."""

    def changes(self, calendar: str, cursor: str | None, window: Window) -> Iterator[ChangePage]:
        for page in super().changes(calendar, cursor, window):
            events = [_garbled(e) if e.title == "broken" else e for e in page.events]
            yield dataclasses.replace(page, events=events)


def _garbled(event: Event) -> Event:
    """An attendee without an address, past the model's own checks, as a buggy adapter might."""
    nobody = Attendee("")
    object.__setattr__(nobody, "email", None)
    return dataclasses.replace(event, attendees=(nobody,))


def test_bad_events_are_logged_and_skipped_and_the_calendar_goes_on(
    db_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    world = World(db_engine, provider=Garbling([ANA, BO, CY]))
    start = tuesday(0)
    broken = world.provider.create_event(
        ANA, [ANA, BO], "broken", start, start + timedelta(minutes=30)
    )
    binary = "\x00\ud800" + "x" * 2_000_000
    huge = world.provider.create_event(
        ANA, [ANA, CY], "huge", start, start + timedelta(minutes=30), description=binary
    )
    good = weekly(world)

    report = world.settle()

    assert report.errors == []
    assert report.skipped["bad-event"] >= 1
    assert "skipping event" in caplog.text
    assert world.block_in(ANA, good, tuesday(0)) is not None
    assert world.block_in(ANA, broken) is None
    assert world.body(ANA, huge).startswith(binary)  # a huge body is still a body
    with world.session() as session:
        row = session.scalars(select(Calendar).where(Calendar.address == ANA)).one()
        assert row.cursor is not None and row.last_error is None


class Crash(BaseException):
    """The process dying mid-sync (not an error the engine may catch)."""


def test_a_crash_mid_sync_loses_nothing_and_duplicates_no_write(world: World) -> None:
    uid = weekly(world)
    calls = []

    def die_on_second_write(calendar: str, event_id: str) -> None:
        calls.append(event_id)
        if len(calls) == 2:
            raise Crash

    world.provider.faults.before_write(die_on_second_write)
    with pytest.raises(Crash):
        world.sync()
    assert len(world.provider.writes) == 1

    world.provider.faults.before_write(None)
    world.restart()
    world.settle()

    written = [w.event_id for w in world.provider.writes]
    assert len(written) == len(set(written)) == 2  # each occurrence written exactly once
    for week in (0, 1):
        assert world.block_in(ANA, uid, tuesday(week)) is not None
    with world.session() as session:
        logged = session.scalars(select(WriteLog.event_id)).all()
    assert sorted(logged) == sorted(written)


def test_an_alias_address_still_meets_in_the_same_pair(db_engine: Engine) -> None:
    world = World(db_engine)
    world.restart(
        rules=detect.Rules(org_domains=("example.org",), aliases={"bo.b@example.org": BO})
    )
    uid = weekly(world)
    start = tuesday(0) + timedelta(days=2)
    adhoc = world.provider.create_event(
        ANA, [ANA, "Bo.B@example.org"], "chat", start, start + timedelta(minutes=15)
    )
    world.settle()

    assert world.meeting(adhoc).pair_id == world.meeting(uid, tuesday(0)).pair_id
    assert world.block_in(ANA, adhoc) is not None


def test_a_failing_calendar_backs_off_and_a_spent_quota_opens_the_circuit(world: World) -> None:
    weekly(world)
    world.provider.faults.fail("changes", Transient("503"), times=100)

    def next_sync() -> timedelta | None:
        with world.session() as session:
            row = session.scalars(select(Calendar).where(Calendar.address == ANA)).one()
            return None if row.next_sync_at is None else row.next_sync_at - world.now

    waits = []
    for _ in range(3):
        world.syncer.sync(ANA, world.now)
        waits.append(next_sync())
    assert waits == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]

    world.provider.faults.clear()
    world.provider.faults.fail("changes", QuotaExceeded("daily limit"), times=1)
    world.syncer.sync(ANA, world.now)
    assert next_sync() == timedelta(hours=1)

    world.provider.faults.fail("changes", AuthRevoked("invalid_grant"), times=1)
    world.syncer.sync(ANA, world.now)
    assert next_sync() is None  # not before someone re-authorises

    world.syncer.sync(ANA, world.now)  # healthy again: errors cleared
    with world.session() as session:
        row = session.scalars(select(Calendar).where(Calendar.address == ANA)).one()
        assert (row.error_count, row.last_error, row.needs_reauth) == (0, None, False)


def test_a_cursor_whose_window_no_longer_covers_the_horizon_is_renewed(world: World) -> None:
    weekly(world)
    world.settle()
    world.advance(days=5)
    assert world.sync().full_syncs == 0

    world.advance(days=8)  # 13 days after the full sync: 28-day window, 14-day horizon
    report = world.sync()

    assert report.full_syncs == len(world.provider.calendars()) and report.errors == []
    world.settle()
    assert world.sync().full_syncs == 0


def test_a_deleted_1on1_marks_its_agenda_cancelled(world: World) -> None:
    start = tuesday(0)
    uid = world.provider.create_event(ANA, [ANA, BO], "chat", start, start + timedelta(minutes=20))
    world.settle()
    assert not world.meeting(uid).cancelled

    world.provider.delete_event(uid)
    world.settle()

    assert world.meeting(uid).cancelled  # its notes stay, marked as not happening


# -- a settled poll costs next to nothing, and time still moves blocks along ----------


def statements_of(world: World, run: Callable[[], object]) -> list[str]:
    """Every SQL statement ``run`` sends to the store."""
    sent: list[str] = []
    engine = world.factory.kw["bind"]

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return sent


def test_a_settled_poll_plans_nothing_and_sends_a_handful_of_statements(world: World) -> None:
    for person in (BO, CY):
        weekly(world, ANA, person, title=f"Ana / {person}")
    world.settle()
    calls_before = len(world.provider.requests)

    sent = statements_of(world, lambda: world.syncer.sync(ANA, world.now + timedelta(minutes=5)))

    assert [r.op for r in world.provider.requests[calls_before:]] == ["changes"]
    writes = [s for s in sent if s.lstrip().upper().startswith(("INSERT", "DELETE"))]
    assert writes == []
    # read the calendar, check that nothing crossed a line, commit the cursor
    assert len(sent) <= 6, sent


def test_an_event_reaching_the_horizon_gets_its_block_with_nothing_else_happening(
    world: World,
) -> None:
    start = world.now + timedelta(days=20)  # beyond the 14 days of the horizon
    uid = world.provider.create_event(
        ANA, [ANA, BO], "quarterly", start, start + timedelta(hours=1)
    )
    world.settle()
    assert world.block_in(ANA, uid) is None

    for _ in range(7):  # a week of quiet daily polls: no edit, no change, no meeting ends
        world.advance(days=1)
        world.sync()
    assert world.block_in(ANA, uid) is not None
