"""Talking points that carry over: an unchecked point of an ended meeting is listed, exactly
once, in the pair's next meeting that has not ended, on its page and in its invite."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine

from providers.memory import MemoryProvider
from providers.model import SINGLE_EVENT
from syncd import agenda, block, push
from syncd.store.models import Meeting, TalkingPoint
from tests.unit.world import ANA, BO, PEOPLE, World, tuesday, weekly

POINT = "the offsite budget"


@pytest.fixture
def world(db_engine: Engine) -> World:
    return World(db_engine, MemoryProvider(PEOPLE, page_size=7))


def _after(meeting_start: datetime) -> datetime:
    return meeting_start + timedelta(minutes=31)  # the 30-minute 1:1 has ended


def _carried_into(world: World, meeting: Meeting) -> list[tuple[str, bool, datetime]]:
    with world.session() as session:
        fresh = session.get_one(Meeting, meeting.id)
        return [
            (point.text, point.done, origin.start)
            for point, origin in agenda.carried_points(session, fresh, world.now)
        ]


def _everywhere(world: World, uid: str, weeks: range) -> dict[int, list[str]]:
    """Week -> the texts of the points carried into that week's meeting."""
    return {
        week: [text for text, _, _ in _carried_into(world, world.meeting(uid, tuesday(week)))]
        for week in weeks
    }


def _raise_point(world: World, uid: str, week: int) -> None:
    world.add_talking_point(uid, tuesday(week), POINT, BO)


def test_an_unchecked_point_appears_once_in_the_next_meeting_and_its_invite(world: World) -> None:
    uid = weekly(world)
    world.settle()
    _raise_point(world, uid, 0)
    world.now = _after(tuesday(0))
    world.settle()

    assert _everywhere(world, uid, range(3)) == {0: [], 1: [POINT], 2: []}
    invite = world.block_in(ANA, uid, tuesday(1)) or ""
    assert f"• {POINT} ({agenda.display_name(BO)}, from Nov 24)" in invite
    assert POINT not in (world.block_in(ANA, uid, tuesday(2)) or "")
    # the invite reads back as a carried point of Nov 24, not a new one of week 1
    names = [agenda.display_name(ANA), agenda.display_name(BO)]
    listed = block.parse(invite, names)
    assert (POINT, agenda.display_name(BO), (11, 24)) in listed.carried_points
    assert all(text != POINT for text, _ in listed.talking_points)


def test_left_unchecked_again_it_moves_on_and_checked_off_it_closes_everywhere(
    world: World,
) -> None:
    uid = weekly(world)
    world.settle()
    _raise_point(world, uid, 0)
    world.now = _after(tuesday(1))  # week 1 ended too, the point still open
    world.settle()
    assert _everywhere(world, uid, range(4)) == {0: [], 1: [], 2: [POINT], 3: []}

    week2 = world.meeting(uid, tuesday(2))
    with world.session() as session:  # as the page does: check off, mark the pair's calendars
        point = session.query(TalkingPoint).filter_by(text=POINT).one()
        agenda.set_talking_point_done(
            session, point, ANA, now=world.now, covered_in=session.get_one(Meeting, week2.id)
        )
        push.mark_pair_due(session, week2.pair_id, world.now)
    world.now += push.DEBOUNCE
    world.settle()
    assert POINT not in (world.block_in(ANA, uid, tuesday(2)) or "")
    # week 2's page says it was covered there; the week it was raised in shows it done
    assert _carried_into(world, week2) == [(POINT, True, tuesday(0))]
    world.now = _after(tuesday(2))
    world.settle()
    assert _everywhere(world, uid, range(3, 5)) == {3: [], 4: []}


def test_a_skipped_week_passes_its_points_and_the_earlier_ones_on(world: World) -> None:
    uid = weekly(world)
    world.settle()
    _raise_point(world, uid, 0)
    world.add_talking_point(uid, tuesday(1), "promotion timeline", ANA)
    world.provider.cancel_occurrence(uid, tuesday(1))
    world.now = _after(tuesday(0))
    world.settle()

    assert world.meeting(uid, tuesday(1)).cancelled
    assert _everywhere(world, uid, range(1, 4)) == {
        1: [],
        2: [POINT, "promotion timeline"],  # oldest first
        3: [],
    }


def test_a_meeting_postponed_past_the_next_one_loses_nothing(world: World) -> None:
    uid = weekly(world)
    world.settle()
    _raise_point(world, uid, 0)
    # week 1 moves to the Thursday after week 2
    later = tuesday(2) + timedelta(days=2)
    world.provider.move_occurrence(uid, tuesday(1), later, later + timedelta(minutes=30))
    world.now = _after(tuesday(0))
    world.settle()
    assert _everywhere(world, uid, range(1, 4)) == {1: [], 2: [POINT], 3: []}

    world.now = _after(tuesday(2))  # week 2 ended with the point unchecked
    assert _everywhere(world, uid, range(1, 4)) == {1: [POINT], 2: [], 3: []}


def test_an_ad_hoc_meeting_between_series_meetings_takes_the_points(world: World) -> None:
    uid = weekly(world)
    thursday = tuesday(0) + timedelta(days=2)
    ad_hoc = world.provider.create_event(
        ANA, [ANA, BO], "Quick sync", thursday, thursday + timedelta(minutes=20)
    )
    world.settle()
    _raise_point(world, uid, 0)
    world.now = _after(tuesday(0))
    world.settle()

    assert [t for t, _, _ in _carried_into(world, world.meeting(ad_hoc, SINGLE_EVENT))] == [POINT]
    assert _everywhere(world, uid, range(1, 3)) == {1: [], 2: []}
    assert POINT in (world.block_in(ANA, ad_hoc) or "")


def test_a_meeting_made_months_ahead_waits_until_it_is_the_next(db_engine: Engine) -> None:
    world = World(db_engine, window_days=150)  # the review is mirrored, its agenda made
    uid = weekly(world)
    far = tuesday(0) + timedelta(days=120)
    review = world.provider.create_event(
        ANA, [ANA, BO], "Half-year review", far, far + timedelta(hours=1)
    )
    world.settle()
    _raise_point(world, uid, 0)
    world.now = _after(tuesday(0))
    world.settle()

    assert [t for t, _, _ in _carried_into(world, world.meeting(review, SINGLE_EVENT))] == []
    assert _everywhere(world, uid, range(1, 3)) == {1: [POINT], 2: []}


def test_template_prompts_stay_where_they_were_asked(world: World) -> None:
    uid = weekly(world)  # the pair's first meeting starts from the template
    world.settle()
    world.now = _after(tuesday(0))
    world.settle()
    assert _everywhere(world, uid, range(1, 3)) == {1: [], 2: []}


def test_carry_over_can_be_turned_off(db_engine: Engine) -> None:
    world = World(db_engine, carry_talking_points=False)
    uid = weekly(world)
    world.settle()
    _raise_point(world, uid, 0)
    world.now = _after(tuesday(0))
    world.settle()
    assert POINT not in (world.block_in(ANA, uid, tuesday(1)) or "")
