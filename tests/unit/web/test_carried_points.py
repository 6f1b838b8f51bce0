"""On the page: a point left unchecked last week is in this week's list, "from" its date;
checked off here it is closed in the week it was raised, and this week says it was covered."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.web.conftest import Browser, Org
from tests.unit.world import ANA, BO, tuesday


def test_a_carried_point_is_listed_and_checked_off_from_the_next_meeting(org: Org) -> None:
    bo = Browser(org.app(), BO)
    week0, _ = org.tokens(0)
    bo.post(f"/m/{week0}/talking-points", {"text": "conference budget"})
    org.now = tuesday(0) + timedelta(minutes=31)  # week 0 ended, the point unchecked
    org.sync()
    week1, _ = org.tokens(1)

    ana = Browser(org.app(), ANA)
    meeting = ana.api("GET", f"/api/v1/meetings/{week1}").json()
    carried = meeting["carried_talking_points"]
    assert [(p["text"], p["done"]) for p in carried] == [("conference budget", False)]
    assert carried[0]["carried_from"].startswith("2026-11-24")
    page = ana.get(f"/m/{week1}").text
    assert "conference budget" in page
    assert '<span class="origin">from 24 Nov 2026</span>' in page

    answer = ana.post(f"/m/{week1}/talking-points/{carried[0]['id']}/done", {"done": "true"})
    assert answer.status_code == 303
    raised = ana.api("GET", f"/api/v1/meetings/{week0}").json()["talking_points"]
    assert [p["done"] for p in raised if p["text"] == "conference budget"] == [True]
    after = ana.api("GET", f"/api/v1/meetings/{week1}").json()["carried_talking_points"]
    assert [(p["text"], p["done"]) for p in after] == [("conference budget", True)]
    assert "covered here, carried from 24 Nov 2026" in ana.get(f"/m/{week1}").text


def test_a_point_of_another_pair_cannot_be_checked_off_through_this_meeting(org: Org) -> None:
    ana = Browser(org.app(), ANA)
    week0, _ = org.tokens(0)
    week1, _ = org.tokens(1)
    ana.post(f"/m/{week1}/talking-points", {"text": "not carried: week 1 has not ended"})
    own = ana.api("GET", f"/api/v1/meetings/{week1}").json()["talking_points"][-1]
    # week 0 has not ended, so week 1's point is nobody's carried point in week 0
    answer = ana.post(f"/m/{week0}/talking-points/{own['id']}/done", {"done": "true"})
    assert answer.status_code == 404
