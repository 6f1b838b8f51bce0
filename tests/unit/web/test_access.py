"""Who can open what: the two people, an admin (read-only), and nobody else."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from syncd.web.settings import WebSettings
from tests.unit.web.conftest import ADMIN, BEHIND_PROXY, Browser, Org
from tests.unit.world import ANA, BO, CY, tuesday

NOBODY_TOKEN = "A" * 32


def pages(org: Org) -> list[str]:
    meeting, pair = org.tokens(0)
    return [
        f"/m/{meeting}",
        f"/p/{pair}",
        f"/p/{pair}/export.md",
        f"/p/{pair}/export.json",
        f"/api/v1/meetings/{meeting}",
    ]


@pytest.mark.parametrize("person", [ANA, BO, ADMIN, ADMIN.upper()])
def test_the_two_people_and_an_admin_open_every_page(org: Org, person: str) -> None:
    browser = Browser(org.app(), person)
    for path in pages(org):
        assert browser.get(path).status_code == 200, path
    meeting, _ = org.tokens(0)
    page = browser.get(f"/m/{meeting}").text
    assert "Ana / Bo 1:1" in page
    # both people named, each with their address at hand
    assert f'title="{ANA}">ana' in page and f'title="{BO}">bo' in page
    assert "UTC for now" not in page and '<abbr title="UTC">UTC</abbr>' in page


def test_a_stranger_gets_the_same_404_as_a_wrong_token(org: Org) -> None:
    stranger = Browser(org.app(), CY)
    owner = Browser(org.app(), ANA)
    meeting, pair = org.tokens(0)
    for path, wrong in [
        (f"/m/{meeting}", f"/m/{NOBODY_TOKEN}"),
        (f"/p/{pair}", f"/p/{NOBODY_TOKEN}"),
        (f"/p/{pair}/export.md", f"/p/{NOBODY_TOKEN}/export.md"),
        (f"/p/{pair}/export.json", f"/p/{NOBODY_TOKEN}/export.json"),
        (f"/api/v1/meetings/{meeting}", f"/api/v1/meetings/{NOBODY_TOKEN}"),
        (f"/m/{meeting}", f"/m/{meeting[:-1]}"),
    ]:
        refused, unknown = stranger.get(path), stranger.get(wrong)
        assert refused.status_code == unknown.status_code == owner.get(wrong).status_code == 404
        # The body says nothing about whether the agenda exists: to the stranger, an
        # agenda that is not theirs reads exactly as one that does not exist (the page
        # names the viewer, so it is compared for the same viewer).
        assert refused.text == unknown.text
        assert "Ana / Bo" not in refused.text
    assert stranger.get(f"/api/v1/meetings/{meeting}").json() == {"error": "not found"}


def test_a_stranger_cannot_edit_through_forms_or_the_api(org: Org) -> None:
    stranger = Browser(org.app(), CY)
    owner = Browser(org.app(), ANA)
    meeting, _ = org.tokens(0)
    # The stranger's browser gets a CSRF cookie of its own from any page (even a 404).
    stranger.get(f"/m/{meeting}")
    cookie = stranger.client.cookies.get("__Host-syncd-csrf")
    assert cookie
    answer = stranger.client.post(
        f"/m/{meeting}/talking-points",
        data={"text": "let me in", "csrf": cookie},
        follow_redirects=False,
    )
    assert answer.status_code == 404
    api = stranger.client.post(
        f"/api/v1/meetings/{meeting}/talking-points",
        json={"text": "let me in"},
        headers={"X-CSRF-Token": cookie},
    )
    assert api.status_code == 404 and api.json() == {"error": "not found"}
    assert "let me in" not in owner.get(f"/m/{meeting}").text


def test_an_admin_reads_but_cannot_edit(org: Org) -> None:
    admin = Browser(org.app(), ADMIN)
    meeting, _ = org.tokens(0)
    page = admin.get(f"/m/{meeting}").text
    assert "administrator" in page
    # The only form an admin gets is the choice of time zone: nothing that edits.
    assert re.findall(r'action="/m/[^"]*"', page) == [f'action="/m/{meeting}/zone"']
    answer = admin.api("POST", f"/api/v1/meetings/{meeting}/talking-points", {"text": "x"})
    assert answer.status_code == 403 and "error" in answer.json()
    viewer = admin.get(f"/api/v1/meetings/{meeting}").json()["viewer"]
    assert viewer == {
        "address": ADMIN,
        "sign_in": "proxy-header",
        "can_edit": False,
        "private_notes": False,
    }


def test_both_people_edit_and_see_each_others_additions(org: Org) -> None:
    ana, bo = Browser(org.app(), ANA), Browser(org.app(), BO)
    meeting, _ = org.tokens(0)
    assert ana.post(f"/m/{meeting}/talking-points", {"text": "Q3 goals"}).status_code == 303
    added = bo.post(
        f"/m/{meeting}/action-items", {"text": "draft the plan", "owner": ANA, "due": "2026-12-01"}
    )
    assert added.status_code == 303 and added.headers["location"] == f"/m/{meeting}#action-items"
    page = ana.get(f"/m/{meeting}").text
    assert "Q3 goals" in page and "added by ana@example.org" in page
    assert "draft the plan" in page and "added by bo@example.org" in page and "01 Dec 2026" in page
    data = bo.get(f"/api/v1/meetings/{meeting}").json()
    point = next(p for p in data["talking_points"] if p["text"] == "Q3 goals")
    item = data["action_items"][0]
    assert item["owner"] == ANA and item["due"] == "2026-12-01" and not item["done"]
    assert (
        bo.post(f"/m/{meeting}/talking-points/{point['id']}/done", {"done": "true"}).status_code
        == 303
    )
    assert (
        ana.post(f"/m/{meeting}/action-items/{item['id']}/done", {"done": "true"}).status_code
        == 303
    )
    data = ana.get(f"/api/v1/meetings/{meeting}").json()
    assert next(p for p in data["talking_points"] if p["id"] == point["id"])["done"]
    assert data["action_items"][0]["done"] and data["action_items"][0]["done_at"]


def test_open_items_of_earlier_meetings_show_and_close_on_a_later_one(org: Org) -> None:
    ana = Browser(org.app(), ANA)
    first, pair = org.tokens(0)
    second, _ = org.tokens(1)
    ana.post(f"/m/{first}/action-items", {"text": "intro to the data team", "owner": BO})
    later = ana.get(f"/m/{second}").text
    carried = later.split('id="carried"')[1].split("</section>")[0]
    assert "intro to the data team" in carried and "from 24 Nov 2026" in carried
    assert f'href="/m/{first}"' in later  # previous meeting
    item = ana.get(f"/api/v1/meetings/{second}").json()["carried_action_items"][0]
    assert item["origin"]["token"] == first
    closed = ana.post(f"/m/{second}/action-items/{item['id']}/done", {"done": "true"})
    assert closed.status_code == 303
    assert ana.get(f"/api/v1/meetings/{second}").json()["carried_action_items"] == []
    history = ana.get(f"/p/{pair}").text
    assert "Nothing open." in history


def test_an_item_of_another_pair_cannot_be_closed_through_this_meeting(org: Org) -> None:
    from tests.unit.world import weekly

    other = weekly(org, CY, ANA, title="Cy / Ana 1:1")
    org.settle()
    cy = Browser(org.app(), CY)
    with org.session() as session:
        from sqlalchemy import select

        from syncd.store.models import Meeting

        theirs = session.scalars(select(Meeting).where(Meeting.ical_uid == other)).first()
        assert theirs is not None
        their_token = theirs.token
    ana = Browser(org.app(), ANA)
    meeting, _ = org.tokens(0)
    item = ana.api(
        "POST", f"/api/v1/meetings/{meeting}/action-items", {"text": "mine", "owner": ANA}
    ).json()
    answer = cy.api("POST", f"/api/v1/meetings/{their_token}/action-items/{item['id']}/done", {})
    assert answer.status_code == 404
    assert not ana.get(f"/api/v1/meetings/{meeting}").json()["action_items"][0]["done"]


def test_pair_page_lists_meetings_newest_first_with_open_items_on_top_and_search(org: Org) -> None:
    ana = Browser(org.app(), ANA)
    first, pair = org.tokens(0)
    second, _ = org.tokens(1)
    ana.post(f"/m/{first}/talking-points", {"text": "hiring plan"})
    ana.post(f"/m/{second}/action-items", {"text": "book the offsite", "owner": BO})
    ana.post(f"/m/{second}/notes/shared", {"body": "offsite in March"})
    page = ana.get(f"/p/{pair}").text
    assert page.index('id="open-items"') < page.index('id="history"')
    assert page.index(f'href="/m/{second}"') < page.index(f'href="/m/{first}"')
    found = ana.get(f"/p/{pair}", params={"q": "OFFSITE"}).text
    history = found.split('id="history"')[1]
    # what matched is marked, whatever its case
    assert "book the <mark>offsite</mark>" in history and "<mark>offsite</mark> in March" in history
    assert "hiring plan" not in history and f'href="/m/{first}"' not in history
    assert "Nothing matches." in ana.get(f"/p/{pair}", params={"q": "zebra"}).text


def test_a_search_shows_an_excerpt_of_a_long_text_around_the_match(org: Org) -> None:
    ana = Browser(org.app(), ANA)
    first, pair = org.tokens(0)
    long = "a" * 5_000 + " the <budget> question " + "b" * 5_000
    ana.post(f"/m/{first}/talking-points", {"text": long})
    history = ana.get(f"/p/{pair}", params={"q": "<BUDGET>"}).text.split('id="history"')[1]
    shown = re.search(r'<span class="text" dir="auto">(…[^…]*…)</span>', history)
    assert shown is not None, "the long point is shown as an excerpt"
    assert "the <mark>&lt;budget&gt;</mark> question" in shown.group(1)
    assert len(shown.group(1)) < 300 and "a" * 5_000 not in history


def test_exports_carry_the_history(org: Org) -> None:
    ana = Browser(org.app(), ANA)
    first, pair = org.tokens(0)
    ana.post(f"/m/{first}/action-items", {"text": "draft [the] plan", "owner": ANA})
    markdown = ana.get(f"/p/{pair}/export.md")
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert "attachment" in markdown.headers["content-disposition"]
    assert (
        r"draft \[the\] plan" in markdown.text and "Private notes are not exported" in markdown.text
    )
    data = ana.get(f"/p/{pair}/export.json").json()
    assert data["people"] == [ANA, BO] and data["private_notes"] == "not exported"
    assert data["open_action_items"][0]["text"] == "draft [the] plan"
    assert first not in markdown.text  # no agenda tokens in a file people forward


def test_link_mode_works_with_the_token_alone_without_private_notes(org: Org) -> None:
    anyone = Browser(org.app(WebSettings(sign_in="link")))
    meeting, pair = org.tokens(0)
    page = anyone.get(f"/m/{meeting}").text
    assert "Anyone with this link" in page and "private notes are off" in page
    assert "Private notes are off when the link alone opens the agenda." in page
    assert 'id="private-body"' not in page
    assert anyone.post(f"/m/{meeting}/talking-points", {"text": "from the link"}).status_code == 303
    assert "added by someone with the link" in anyone.get(f"/m/{meeting}").text
    refused = anyone.post(f"/m/{meeting}/notes/private", {"body": "secret"})
    assert refused.status_code == 403
    api = anyone.api("PUT", f"/api/v1/meetings/{meeting}/notes/private", {"body": "secret"})
    assert api.status_code == 403 and "private notes are off" in api.json()["error"]
    data = anyone.get(f"/api/v1/meetings/{meeting}").json()
    assert data["notes"]["private"] is None and data["viewer"]["sign_in"] == "link"
    assert anyone.get(f"/p/{pair}").status_code == 200
    assert anyone.get(f"/m/{NOBODY_TOKEN}").status_code == 404


def test_an_identity_header_from_an_untrusted_peer_is_ignored(org: Org) -> None:
    meeting, _ = org.tokens(0)
    direct = WebSettings(sign_in="proxy-header", admins=(ADMIN,))  # trusts only loopback
    for person in (ANA, ADMIN):
        spoofed = Browser(org.app(direct), person)
        assert spoofed.get(f"/m/{meeting}").status_code == 404
        assert spoofed.get(f"/api/v1/meetings/{meeting}").status_code == 404
    # The same request through the trusted proxy is Ana's.
    assert Browser(org.app(BEHIND_PROXY), ANA).get(f"/m/{meeting}").status_code == 200


def test_the_header_name_is_configurable_and_no_header_is_nobody(org: Org) -> None:
    meeting, _ = org.tokens(0)
    custom = WebSettings(
        sign_in="proxy-header", proxy_header="X-Auth-User", trusted_proxies=("testclient",)
    )
    assert (
        Browser(org.app(custom), ANA, header="X-Auth-User").get(f"/m/{meeting}").status_code == 200
    )
    assert Browser(org.app(custom), ANA).get(f"/m/{meeting}").status_code == 404
    assert Browser(org.app(custom)).get(f"/m/{meeting}").status_code == 404


def test_the_not_found_page_gives_advice_that_fits_the_sign_in_mode(org: Org) -> None:
    meeting, _ = org.tokens(0)
    link = " ".join(Browser(org.app(WebSettings())).get(f"/m/{NOBODY_TOKEN}").text.split())
    assert "This link does not open any agenda" in link and "signed in" not in link

    stranger = Browser(org.app(), CY).get(f"/m/{meeting}")
    assert stranger.status_code == 404
    text = " ".join(stranger.text.split())
    assert f"that {CY} can open" in text and "signed in with the account" in text

    unnamed = " ".join(Browser(org.app()).get(f"/m/{NOBODY_TOKEN}").text.split())
    assert "could not tell who you are" in unnamed


def test_the_history_says_where_each_meeting_stands_and_folds_empty_later_ones(
    org: Org,
) -> None:
    ana = Browser(org.app(), ANA)
    week0, pair = org.tokens(0)
    week1, _ = org.tokens(1)
    week2, _ = org.tokens(2)
    ana.post(f"/m/{week2}/talking-points", {"text": "Plan for week 2"})
    org.now = tuesday(0) + timedelta(minutes=10)  # week 0 is under way
    page = ana.get(f"/p/{pair}").text
    history = page.split('id="history"')[1]
    articles = re.findall(r'<article class="meeting">(.*?)</article>', history, flags=re.S)
    states = {
        token: re.search(r'class="state[^"]*">([^<]+)<', body).group(1)  # type: ignore[union-attr]
        for body in articles
        for token in re.findall(r'href="/m/([^"]+)"', body)
    }
    assert states[week0] == "In progress" and states[week2] == "Later"
    assert week1 not in states  # nothing in it yet: folded into one line
    folded = re.search(r'<p class="later-empty">(.*?)</p>', history, flags=re.S)
    assert folded is not None and f'href="/m/{week1}"' in folded.group(1)
    assert "with nothing added yet" in folded.group(1)
    # the meeting page says it too
    assert ">In progress<" in ana.get(f"/m/{week0}").text
    org.now = tuesday(0) + timedelta(hours=1)
    assert ">Ended<" in ana.get(f"/m/{week0}").text
    assert ">Next meeting<" in ana.get(f"/m/{week1}").text
