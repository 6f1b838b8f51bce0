"""When an invite whose every rewrite mails the attendees may be rewritten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.budget import MAX_MAILS, Budget, Copy, Occasion, Wait, decide

START = datetime(2026, 12, 10, 15, 0, tzinfo=UTC)
BUDGET = Budget(lead=timedelta(hours=2), gap=timedelta(hours=3))
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def copy(
    *,
    has_block: bool = True,
    written_at: datetime | None = START - 3 * DAY,
    refreshes: int = 0,
    previous_end: datetime | None = None,
) -> Copy:
    return Copy(START, has_block, written_at, refreshes, previous_end)


def test_where_writes_mail_nobody_every_change_is_written() -> None:
    assert decide(copy(refreshes=5), START - 5 * DAY, BUDGET, mailed=False) is Occasion.FREE


def test_the_first_block_is_written_at_once() -> None:
    assert decide(copy(has_block=False, written_at=None), START - 6 * DAY, BUDGET, mailed=True) is (
        Occasion.FIRST
    )


def test_an_edit_days_before_the_meeting_waits_for_the_refresh_window() -> None:
    assert decide(copy(), START - 2 * DAY, BUDGET, mailed=True) == Wait(START - 2 * HOUR)


def test_within_the_lead_the_refresh_is_written_once() -> None:
    now = START - HOUR
    assert decide(copy(), now, BUDGET, mailed=True) is Occasion.REFRESH
    assert decide(
        copy(refreshes=1, written_at=now), now + timedelta(minutes=5), BUDGET, mailed=True
    ) == (Wait(None))


def test_the_refresh_keeps_its_gap_after_the_last_write() -> None:
    written = START - 4 * HOUR  # e.g. the carry-over, four hours before the meeting
    assert decide(copy(written_at=written), START - 2 * HOUR, BUDGET, mailed=True) == Wait(
        written + BUDGET.gap
    )
    assert decide(copy(written_at=written), written + BUDGET.gap, BUDGET, mailed=True) is (
        Occasion.REFRESH
    )


def test_a_write_too_close_to_the_meeting_leaves_the_invite_alone() -> None:
    written = START - 30 * timedelta(minutes=1)
    assert decide(
        copy(written_at=written), START - 10 * timedelta(minutes=1), BUDGET, mailed=True
    ) == (Wait(None))


def test_no_refresh_once_the_meeting_has_started() -> None:
    assert decide(
        copy(written_at=START - 5 * DAY), START + timedelta(minutes=10), BUDGET, mailed=True
    ) == (Wait(None))


def test_a_lead_of_zero_turns_the_refresh_off() -> None:
    off = Budget(lead=timedelta(0), gap=timedelta(0))
    assert decide(copy(), START - timedelta(minutes=1), off, mailed=True) == Wait(None)


def test_the_previous_meeting_ending_after_the_last_write_is_the_carry_over() -> None:
    ended = START - 7 * DAY + HOUR
    written = ended - 6 * DAY
    assert decide(copy(written_at=written, previous_end=ended), ended, BUDGET, mailed=True) is (
        Occasion.CARRY
    )
    # once written after that end, the same meeting is no reason to write again
    assert decide(
        copy(written_at=ended + HOUR, previous_end=ended), ended + 2 * HOUR, BUDGET, mailed=True
    ) == (Wait(START - 2 * HOUR))


def test_a_carry_over_is_written_even_after_the_refresh() -> None:
    """A meeting moved after this one's refresh still hands its items over."""
    ended = START - HOUR
    got = decide(
        copy(written_at=START - 90 * timedelta(minutes=1), refreshes=1, previous_end=ended),
        ended,
        BUDGET,
        mailed=True,
    )
    assert got is Occasion.CARRY


def test_a_meeting_that_has_not_ended_yet_is_no_carry_over() -> None:
    later = START + 7 * DAY
    assert decide(copy(previous_end=later), START - 2 * DAY, BUDGET, mailed=True) == Wait(
        START - 2 * HOUR
    )


@pytest.mark.parametrize("every", [1, 7, 30, 90])
def test_a_week_of_edits_costs_three_mails_whatever_their_pace(every: int) -> None:
    """An edit every few minutes from a week before the start, the previous meeting ending
    on the way: the first block, the carry-over and one refresh, nothing else."""
    now = START - 7 * DAY
    state = copy(has_block=False, written_at=None, previous_end=START - 6 * DAY)
    written: list[Occasion] = []
    while now < START:
        got = decide(state, now, BUDGET, mailed=True)
        if isinstance(got, Occasion):
            written.append(got)
            refreshes = state.refreshes + (got is Occasion.REFRESH)
            state = Copy(START, True, now, refreshes, state.previous_end)
        now += timedelta(minutes=every)
    assert written == [Occasion.FIRST, Occasion.CARRY, Occasion.REFRESH]
    assert len(written) == MAX_MAILS
