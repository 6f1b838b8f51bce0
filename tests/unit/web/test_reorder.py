"""Talking points move up and down, on the page and through the API, same rules."""

from __future__ import annotations

import re

from syncd import push
from tests.unit.web.conftest import Browser, Org
from tests.unit.web.test_invite_follows import marks
from tests.unit.world import ANA, BO, CY

_POINT = re.compile(r'<span class="text" dir="auto">([^<]*)</span>')


def page_order(browser: Browser, meeting: str) -> list[str]:
    page = browser.get(f"/m/{meeting}").text
    section = page.split('id="talking-points"', 1)[1].split('id="action-items"', 1)[0]
    return _POINT.findall(section)


def api_order(browser: Browser, meeting: str) -> list[str]:
    points = browser.get(f"/api/v1/meetings/{meeting}").json()["talking_points"]
    return [point["text"] for point in points]


def ids(browser: Browser, meeting: str) -> dict[str, int]:
    points = browser.get(f"/api/v1/meetings/{meeting}").json()["talking_points"]
    return {point["text"]: point["id"] for point in points}


def setup(org: Org) -> tuple[Browser, Browser, str, list[str]]:
    ana, bo = Browser(org.app(), ANA), Browser(org.app(), BO)
    meeting, _ = org.tokens(0)
    for text in ("first", "second", "third"):
        assert ana.post(f"/m/{meeting}/talking-points", {"text": text}).status_code == 303
    before = page_order(ana, meeting)
    assert before[-3:] == ["first", "second", "third"]
    return ana, bo, meeting, before


def test_moving_up_and_down_on_the_page(org: Org) -> None:
    ana, bo, meeting, before = setup(org)
    point = ids(ana, meeting)
    answer = bo.post(f"/m/{meeting}/talking-points/{point['third']}/move", {"offset": "-1"})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/m/{meeting}#talking-points"
    expected = [*before[:-3], "first", "third", "second"]
    assert page_order(ana, meeting) == api_order(bo, meeting) == expected
    # Moving past the end is a no-op.
    ana.post(f"/m/{meeting}/talking-points/{point['second']}/move", {"offset": "1"})
    assert page_order(bo, meeting) == expected
    ana.post(f"/m/{meeting}/talking-points/{point['first']}/move", {"offset": "1"})
    assert page_order(bo, meeting) == [*before[:-3], "third", "first", "second"]


def test_the_buttons_are_labelled_and_hidden_where_they_would_do_nothing(org: Org) -> None:
    ana, _, meeting, before = setup(org)
    page = ana.get(f"/m/{meeting}").text
    section = page.split('id="talking-points"', 1)[1].split('id="action-items"', 1)[0]
    count = len(before)
    assert section.count('<span class="sr">Move up</span>') == count - 1
    assert section.count('<span class="sr">Move down</span>') == count - 1
    first, last = ids(ana, meeting)[before[0]], ids(ana, meeting)["third"]
    assert f"/talking-points/{first}/move" in section
    # The first point only moves down, the last only up.
    first_li = section.split(f"/talking-points/{first}/done", 1)[1].split("</li>", 1)[0]
    last_li = section.split(f"/talking-points/{last}/done", 1)[1].split("</li>", 1)[0]
    assert "Move down" in first_li and "Move up" not in first_li
    assert "Move up" in last_li and "Move down" not in last_li


def test_moving_through_the_api(org: Org) -> None:
    ana, bo, meeting, before = setup(org)
    point = ids(ana, meeting)
    answer = bo.api(
        "POST", f"/api/v1/meetings/{meeting}/talking-points/{point['second']}/move", {"offset": 1}
    )
    assert answer.status_code == 200
    expected = [*before[:-3], "first", "third", "second"]
    assert [p["text"] for p in answer.json()["talking_points"]] == expected
    assert page_order(ana, meeting) == api_order(ana, meeting) == expected
    for wrong in (0, 2, -2, True, "1", None):
        refused = ana.api(
            "POST",
            f"/api/v1/meetings/{meeting}/talking-points/{point['first']}/move",
            {"offset": wrong},
        )
        assert refused.status_code == 400, wrong
    assert api_order(ana, meeting) == expected


def test_a_move_marks_the_organizers_calendar_due(org: Org) -> None:
    ana, bo, meeting, before = setup(org)
    point = ids(ana, meeting)
    org.now = org.now + push.DEBOUNCE * 10
    bo.post(f"/m/{meeting}/talking-points/{point['third']}/move", {"offset": "-1"})
    assert marks(org)[ANA] == org.now + push.DEBOUNCE


def test_a_stranger_gets_404_and_moves_nothing(org: Org) -> None:
    ana, _, meeting, before = setup(org)
    point = ids(ana, meeting)["third"]
    stranger = Browser(org.app(), CY)
    stranger.get(f"/m/{meeting}")
    cookie = stranger.client.cookies.get("__Host-syncd-csrf")
    form = stranger.client.post(
        f"/m/{meeting}/talking-points/{point}/move",
        data={"offset": "-1", "csrf": cookie},
        follow_redirects=False,
    )
    assert form.status_code == 404
    api = stranger.client.post(
        f"/api/v1/meetings/{meeting}/talking-points/{point}/move",
        json={"offset": -1},
        headers={"X-CSRF-Token": cookie},
    )
    assert api.status_code == 404 and api.json() == {"error": "not found"}
    assert page_order(ana, meeting) == before


def test_a_point_of_another_meeting_is_not_found(org: Org) -> None:
    ana, _, meeting, _ = setup(org)
    point = ids(ana, meeting)["third"]
    other, _ = org.tokens(1)
    answer = ana.post(
        f"/m/{other}/talking-points/{point}/move", {"offset": "-1"}, page=f"/m/{other}"
    )
    assert answer.status_code == 404


def test_a_move_without_the_csrf_token_is_refused(org: Org) -> None:
    ana, _, meeting, before = setup(org)
    point = ids(ana, meeting)["third"]
    form = ana.client.post(
        f"/m/{meeting}/talking-points/{point}/move", data={"offset": "-1"}, follow_redirects=False
    )
    assert form.status_code == 403
    api = ana.api(
        "POST",
        f"/api/v1/meetings/{meeting}/talking-points/{point}/move",
        {"offset": -1},
        csrf=False,
    )
    assert api.status_code == 403
    assert page_order(ana, meeting) == before


def test_a_drag_puts_a_point_at_a_position_and_the_others_keep_their_order(org: Org) -> None:
    ana, bo, meeting, before = setup(org)
    point = ids(ana, meeting)
    # the page's drag: "third" dropped at the very top
    answer = bo.post(f"/m/{meeting}/talking-points/{point['third']}/move", {"position": "0"})
    assert answer.status_code == 303
    expected = ["third", *before[:-1]]
    assert page_order(ana, meeting) == api_order(bo, meeting) == expected
    # through the API: "third" past the end is last again
    moved = ana.api(
        "POST", f"/api/v1/meetings/{meeting}/talking-points/{point['third']}/move", {"position": 99}
    )
    assert moved.status_code == 200
    assert [p["text"] for p in moved.json()["talking_points"]] == before
    for wrong in ({"position": -1}, {"position": "0"}, {"position": True}, {"position": 10_000},
                  {"position": 1, "offset": 1}, {}):  # fmt: skip
        refused = ana.api(
            "POST", f"/api/v1/meetings/{meeting}/talking-points/{point['first']}/move", wrong
        )
        assert refused.status_code == 400, wrong
    for wrong_form in ("-1", "x", "²", ""):
        refused = ana.post(
            f"/m/{meeting}/talking-points/{point['first']}/move", {"position": wrong_form}
        )
        assert refused.status_code == 400, wrong_form
    assert api_order(ana, meeting) == before
