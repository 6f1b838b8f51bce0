"""An edit on the page marks the pair's organizer calendars due; the next sync rewrites."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from syncd import push
from syncd.store.models import Calendar
from tests.unit.web.conftest import Browser, Org
from tests.unit.world import ANA, BO, CY, tuesday


def marks(org: Org) -> dict[str, datetime | None]:
    with org.session() as session:
        return {row.address: row.next_sync_at for row in session.scalars(select(Calendar))}


def set_mark(org: Org, address: str, when: datetime | None) -> None:
    with org.session() as session:
        session.scalars(
            select(Calendar).where(Calendar.address == address)
        ).one().next_sync_at = when


def test_an_edit_marks_the_organizers_calendar_and_the_next_invite_follows(org: Org) -> None:
    assert all(mark is None for mark in marks(org).values())
    bo = Browser(org.app(), BO)
    meeting, _ = org.tokens(0)
    answer = bo.post(f"/m/{meeting}/action-items", {"text": "intro to the data team", "owner": BO})
    assert answer.status_code == 303

    # Ana organizes the series: her calendar holds the copies syncd writes.
    assert marks(org) == {ANA: org.now + push.DEBOUNCE, BO: None, CY: None}

    # During the meeting week 1's invite does not churn; once week 0 has ended it follows.
    org.now = tuesday(0) + timedelta(minutes=10)
    org.sync()
    assert "intro to the data team" not in (org.block_in(ANA, org.uid, tuesday(1)) or "")
    org.now = tuesday(0) + timedelta(minutes=31)
    org.sync()
    block = org.block_in(ANA, org.uid, tuesday(1)) or ""
    assert "intro to the data team" in block and "bo" in block


def test_an_earlier_mark_is_kept_and_a_mark_already_due_is_moved(org: Org) -> None:
    ana = Browser(org.app(), ANA)
    meeting, _ = org.tokens(0)
    sooner = org.now + timedelta(seconds=1)
    set_mark(org, ANA, sooner)
    ana.post(f"/m/{meeting}/talking-points", {"text": "one"})
    assert marks(org)[ANA] == sooner

    set_mark(org, ANA, org.now - timedelta(minutes=5))  # a sync may be running on it
    ana.post(f"/m/{meeting}/talking-points", {"text": "two"})
    assert marks(org)[ANA] == org.now + push.DEBOUNCE

    later = org.now + timedelta(hours=1)  # e.g. a poll: an edit brings it forward
    set_mark(org, ANA, later)
    ana.api("PUT", f"/api/v1/meetings/{meeting}/notes/shared", {"body": "notes"})
    assert marks(org)[ANA] == org.now + push.DEBOUNCE


def test_reading_marks_nothing_and_a_refused_edit_marks_nothing(org: Org) -> None:
    meeting, pair = org.tokens(0)
    ana, cy = Browser(org.app(), ANA), Browser(org.app(), CY)
    ana.get(f"/m/{meeting}")
    ana.get(f"/p/{pair}")
    cy.api("POST", f"/api/v1/meetings/{meeting}/talking-points", {"text": "x"})
    ana.client.post(f"/m/{meeting}/talking-points", data={"text": "no csrf"})
    assert all(mark is None for mark in marks(org).values())
