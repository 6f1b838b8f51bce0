"""The page says when the invite last got the agenda, since the invite may lag the page."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import Engine

from providers.memory import MemoryProvider
from tests.unit.web.conftest import Browser, Org
from tests.unit.world import ANA, BO, PEOPLE, tuesday, weekly


def stated(page: str) -> str:
    found = re.search(r'<p class="invite" id="invite-updated">(.*?)</p>', page, re.S)
    assert found, "the page says nothing about the invite"
    return " ".join(re.sub(r"<[^>]+>", "", found.group(1)).split())


def test_the_page_says_when_the_invite_was_written_and_when_it_was_not(org: Org) -> None:
    bo = Browser(org.app(), BO)
    written, _ = org.tokens(0)
    beyond_horizon, _ = org.tokens(2)  # only the next two occurrences carry a block

    page = bo.get(f"/m/{written}").text
    assert f'datetime="{org.now.isoformat()}"' in page
    assert stated(page).startswith("Invite last updated ")
    assert stated(page).endswith("This page is always the current agenda.")
    assert stated(bo.get(f"/m/{beyond_horizon}").text) == (
        "Not in the calendar invite yet. This page is always the current agenda."
    )

    api = bo.get(f"/api/v1/meetings/{written}").json()
    assert api["invite_updated_at"] == org.now.isoformat()
    assert bo.get(f"/api/v1/meetings/{beyond_horizon}").json()["invite_updated_at"] is None


def test_where_the_invite_waits_for_its_refresh_the_page_keeps_the_earlier_time(
    db_engine: Engine,
) -> None:
    org = Org(db_engine, MemoryProvider(PEOPLE, page_size=7, mails_attendees=True))
    org.uid = weekly(org, ANA, BO)
    org.settle()
    first = org.now
    meeting, _ = org.tokens(0)

    org.now += timedelta(hours=1)
    org.add_talking_point(org.uid, tuesday(0), "headcount", BO)
    org.sync()
    ana = Browser(org.app(), ANA)
    page = ana.get(f"/m/{meeting}").text
    assert "headcount" in page  # the page is current
    assert f'datetime="{first.isoformat()}"' in page  # the invite is not, and says since when
    assert "headcount" not in (org.block_in(ANA, org.uid, tuesday(0)) or "")
