"""``/``: a person's next 1:1s and the action items of all their pairs, in one place."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from syncd.web.settings import WebSettings
from tests.unit.web.conftest import Browser, Org
from tests.unit.world import ANA, BO, CY, TEMPLATE, tuesday, weekly


def read(markup: str) -> str:
    """What a person reads: no tags, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def sections(page: str) -> dict[str, str]:
    """What a person reads in each section of the page, by the section's id."""
    return {
        name: read(body)
        for name, body in re.findall(r'<section id="([^"]+)"(.*?)</section>', page, flags=re.S)
    }


def test_my_next_1on1s_list_the_next_meeting_of_each_pair_with_its_open_points(org: Org) -> None:
    weekly(org, CY, ANA, title="Cy / Ana 1:1")  # Cy organizes, Tuesdays too
    org.settle()
    ana = Browser(org.app(), ANA)
    week0, _ = org.tokens(0)
    ana.post(f"/m/{week0}/talking-points", {"text": "Offsite budget"})

    page = ana.get("/")
    assert page.status_code == 200
    upcoming = sections(page.text)["upcoming"]
    link = r'<a class="meeting-link" href="/m/{}"><span class="sr">1:1 with </span>{}</a>'
    assert re.search(link.format('[^"]+', "cy"), page.text)
    assert re.search(link.format(week0, "bo"), page.text)  # the pair's next meeting
    # what people added is listed; the template's prompts are only counted
    assert "Offsite budget" in upcoming and TEMPLATE[0] not in upcoming
    cy_line = upcoming[upcoming.index("1:1 with cy") :]
    assert f"Nothing added yet ({len(TEMPLATE)} prompts from the template)" in cy_line

    # once week 0 ends with the point unchecked, week 1 is next and lists it, carried
    org.now = tuesday(0) + timedelta(minutes=31)
    upcoming = sections(ana.get("/").text)["upcoming"]
    week1, _ = org.tokens(1)
    assert f'href="/m/{week1}"' in ana.get("/").text
    assert "Offsite budget (from 24 Nov 2026)" in upcoming


def test_my_items_come_overdue_first_and_what_others_owe_me_is_apart(org: Org) -> None:
    ana = Browser(org.app(), ANA)
    week0, _ = org.tokens(0)
    org.now = tuesday(0) + timedelta(days=3)
    for text, owner, due in (
        ("Undated mine", ANA, ""),
        ("Due next month", ANA, "2026-12-28"),
        ("Overdue mine", ANA, "2026-11-25"),
        ("Bo sends the slides", BO, "2026-12-01"),
    ):
        ana.post(f"/m/{week0}/action-items", {"text": text, "owner": owner, "due": due})
    done = ana.api("GET", f"/api/v1/meetings/{week0}").json()["action_items"]
    ana.post(
        f"/m/{week0}/action-items",
        {"text": "Already done", "owner": ANA, "due": ""},
    )
    finished = ana.api("GET", f"/api/v1/meetings/{week0}").json()["action_items"][-1]
    ana.post(f"/m/{week0}/action-items/{finished['id']}/done", {"done": "true"})
    assert len(done) == 4

    page = sections(ana.get("/").text)
    mine = page["my-items"]
    assert mine.index("Overdue mine") < mine.index("Due next month") < mine.index("Undated mine")
    assert "overdue, was due 25 Nov 2026" in mine and "with bo" in mine
    assert "Bo sends the slides" not in mine and "Already done" not in mine
    assert "Bo sends the slides" in page["owed-items"] and "bo owes it" in page["owed-items"]

    bo_home = sections(Browser(org.app(), BO).get("/").text)
    assert "Bo sends the slides" in bo_home["my-items"]
    assert "Overdue mine" in bo_home["owed-items"]


def test_nobody_sees_the_items_of_a_pair_they_are_not_in(org: Org) -> None:
    ana = Browser(org.app(), ANA)
    week0, _ = org.tokens(0)
    ana.post(f"/m/{week0}/action-items", {"text": "Ana's secret plan", "owner": ANA, "due": ""})
    cy_home = Browser(org.app(), CY).get("/").text
    assert "Ana's secret plan" not in cy_home
    assert "No upcoming 1:1s." in cy_home


def test_in_link_mode_home_explains_how_agendas_are_opened(org: Org) -> None:
    page = Browser(org.app(WebSettings())).get("/")
    assert page.status_code == 200
    assert "Open it from the link in the meeting's calendar invite" in read(page.text)
    assert "action items" not in page.text.lower()


def test_behind_a_proxy_that_named_nobody_home_says_so(org: Org) -> None:
    page = Browser(org.app()).get("/")  # no header from the proxy
    assert page.status_code == 200
    assert "could not tell who you are" in read(page.text)
