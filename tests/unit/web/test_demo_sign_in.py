"""``syncd demo``'s sign-in: pick a seeded person, and the demo shows their private notes."""

from __future__ import annotations

import pytest

from syncd.web.settings import WebSettings
from tests.unit.web.conftest import Browser, Org
from tests.unit.world import ANA, BO, CY

DEMO = WebSettings(sign_in="demo", demo_people=(ANA, BO, CY))


def pick(browser: Browser, person: str, back: str = "/") -> str:
    """Choose ``person`` on the picker, as a click would; where it sends the browser."""
    csrf = browser.csrf(f"/signin?next={back}")
    answer = browser.client.post(
        "/signin", data={"person": person, "next": back, "csrf": csrf}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def test_without_a_pick_the_link_opens_the_agenda_as_in_link_mode(org: Org) -> None:
    meeting, _ = org.tokens(0)
    nobody = Browser(org.app(DEMO))
    page = nobody.get(f"/m/{meeting}")
    assert page.status_code == 200
    assert "Pick who you are" in page.text and 'id="private-body"' not in page.text
    nobody.post(f"/m/{meeting}/talking-points", {"text": "From the link"})
    points = nobody.api("GET", f"/api/v1/meetings/{meeting}").json()["talking_points"]
    assert points[-1]["author"] == "someone with the link"


def test_a_picked_person_edits_as_themselves_and_their_private_note_is_theirs(org: Org) -> None:
    meeting, _ = org.tokens(0)
    ana = Browser(org.app(DEMO))
    assert pick(ana, ANA, f"/m/{meeting}") == f"/m/{meeting}"
    page = ana.get(f"/m/{meeting}").text
    assert f"Signed in as {ANA}" in page and 'id="private-body"' in page
    ana.post(f"/m/{meeting}/notes/private", {"body": "Ask about the promotion"})
    ana.post(f"/m/{meeting}/talking-points", {"text": "Ana's point"})
    points = ana.api("GET", f"/api/v1/meetings/{meeting}").json()["talking_points"]
    assert points[-1]["author"] == ANA

    bo = Browser(org.app(DEMO))
    pick(bo, BO)
    assert "Ask about the promotion" not in bo.get(f"/m/{meeting}").text
    assert "Ask about the promotion" in ana.get(f"/m/{meeting}").text
    assert "My 1:1s" in ana.get("/").text  # and a home of her own

    # Cy is in the demo but not in this 1:1: the link opens it, her notes are not offered
    cy = Browser(org.app(DEMO))
    pick(cy, CY)
    page = cy.get(f"/m/{meeting}").text
    assert "Ask about the promotion" not in page and 'id="private-body"' not in page


def test_signing_out_makes_the_browser_nobody_again(org: Org) -> None:
    meeting, _ = org.tokens(0)
    ana = Browser(org.app(DEMO))
    pick(ana, ANA)
    out = ana.client.post("/signout", data={"csrf": ana.csrf("/signin")}, follow_redirects=False)
    assert out.status_code == 303
    assert "Pick who you are" in ana.get(f"/m/{meeting}").text


@pytest.mark.parametrize(
    "person", ["mallory@example.org", "", "ana@example.org\r\nSet-Cookie: x=y"]
)
def test_only_the_demo_people_can_be_picked(org: Org, person: str) -> None:
    browser = Browser(org.app(DEMO))
    csrf = browser.csrf("/signin")
    answer = browser.client.post(
        "/signin", data={"person": person, "csrf": csrf}, follow_redirects=False
    )
    assert answer.status_code == 400 and "Please pick one of the people listed" in answer.text
    assert "syncd-demo-person" not in answer.headers.get("set-cookie", "")


def test_a_planted_cookie_naming_someone_else_is_nobody(org: Org) -> None:
    meeting, _ = org.tokens(0)
    browser = Browser(org.app(DEMO))
    browser.client.cookies.set("syncd-demo-person", "mallory@example.org")
    assert "Pick who you are" in browser.get(f"/m/{meeting}").text


def test_a_pick_without_the_form_token_is_refused(org: Org) -> None:
    browser = Browser(org.app(DEMO))
    answer = browser.client.post("/signin", data={"person": ANA}, follow_redirects=False)
    assert answer.status_code == 400
    assert "syncd-demo-person" not in answer.headers.get("set-cookie", "")


def test_a_real_sign_in_mode_has_no_picker(org: Org) -> None:
    assert Browser(org.app(WebSettings())).get("/signin").status_code == 404
    answer = Browser(org.app()).client.post("/signin", data={"person": ANA})
    assert answer.status_code in (404, 405)
