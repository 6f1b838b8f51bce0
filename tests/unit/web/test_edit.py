"""Editing and deleting existing talking points and action items, on the page and the API."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from syncd import push
from syncd.store.models import Meeting
from syncd.web.settings import WebSettings
from tests.unit.web.conftest import ADMIN, Browser, Org
from tests.unit.web.test_invite_follows import marks, set_mark
from tests.unit.world import ANA, BO, CY, tuesday, weekly


def api_base(meeting: str) -> str:
    return f"/api/v1/meetings/{meeting}"


def read(browser: Browser, meeting: str) -> dict[str, Any]:
    data: dict[str, Any] = browser.get(api_base(meeting)).json()
    return data


def point_of(browser: Browser, meeting: str, point_id: int) -> dict[str, Any] | None:
    return next((p for p in read(browser, meeting)["talking_points"] if p["id"] == point_id), None)


def item_of(browser: Browser, meeting: str, item_id: int) -> dict[str, Any] | None:
    data = read(browser, meeting)
    every = data["action_items"] + data["carried_action_items"]
    return next((i for i in every if i["id"] == item_id), None)


def seed(org: Org, meeting: str) -> tuple[int, int]:
    """Ana adds a talking point and an action item (Bo's, due 1 Dec); their ids."""
    ana = Browser(org.app(), ANA)
    point = ana.api("POST", f"{api_base(meeting)}/talking-points", {"text": "Q3 goals"}).json()
    item = ana.api(
        "POST",
        f"{api_base(meeting)}/action-items",
        {"text": "draft the plan", "owner": BO, "due": "2026-12-01"},
    ).json()
    return point["id"], item["id"]


def section(page: str, name: str) -> str:
    return page.split(f'<section id="{name}"', 1)[1].split("</section>", 1)[0]


# -- the page, without JavaScript ----------------------------------------------


def test_each_item_has_a_plain_edit_form_with_its_current_values(org: Org) -> None:
    meeting, _ = org.tokens(0)
    point_id, item_id = seed(org, meeting)
    page = Browser(org.app(), BO).get(f"/m/{meeting}").text
    points, items = section(page, "talking-points"), section(page, "action-items")
    for form in (
        f'action="/m/{meeting}/talking-points/{point_id}/edit"',
        f'action="/m/{meeting}/talking-points/{point_id}/delete"',
    ):
        assert form in points
    for form in (
        f'action="/m/{meeting}/action-items/{item_id}/edit"',
        f'action="/m/{meeting}/action-items/{item_id}/delete"',
    ):
        assert form in items
    assert "Edit this talking point" in points and "Edit this action item" in items
    # The editor starts from what is there: the text, Bo as owner, the due date.
    assert re.search(r"<textarea[^>]*>\nQ3 goals</textarea>", points)
    assert f'<option value="{BO}" selected>' in items
    assert 'name="due" type="date" value="2026-12-01"' in items
    # Every form on the page carries the CSRF token.
    assert page.count("<form") == page.count('name="csrf"')


def test_both_people_edit_and_delete_through_the_forms(org: Org) -> None:
    meeting, _ = org.tokens(0)
    point_id, item_id = seed(org, meeting)
    ana, bo = Browser(org.app(), ANA), Browser(org.app(), BO)

    answer = bo.post(f"/m/{meeting}/talking-points/{point_id}/edit", {"text": "Q4 goals"})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/m/{meeting}#talking-points"
    answer = bo.post(
        f"/m/{meeting}/action-items/{item_id}/edit",
        {"text": "draft the mentoring plan", "owner": ANA, "due": "2026-12-08"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/m/{meeting}#action-items"

    page = ana.get(f"/m/{meeting}").text
    assert "Q4 goals" in page and "Q3 goals" not in page
    items = section(page, "action-items")
    assert "draft the mentoring plan" in items and "08 Dec 2026" in items
    assert '<span class="owner">ana:</span>' in items
    # An edit does not change who raised the point or added the item.
    assert point_of(bo, meeting, point_id) == {
        "id": point_id,
        "text": "Q4 goals",
        "author": ANA,
        "done": False,
    }
    item = item_of(bo, meeting, item_id)
    assert item is not None and item["author"] == ANA

    # An empty due field clears the date.
    ana.post(
        f"/m/{meeting}/action-items/{item_id}/edit",
        {"text": "draft the mentoring plan", "owner": ANA, "due": ""},
    )
    item = item_of(bo, meeting, item_id)
    assert item is not None and item["due"] is None

    assert (
        ana.post(f"/m/{meeting}/talking-points/{point_id}/delete", {"confirm": "yes"}).status_code
        == 303
    )
    assert (
        bo.post(f"/m/{meeting}/action-items/{item_id}/delete", {"confirm": "yes"}).status_code
        == 303
    )
    assert point_of(ana, meeting, point_id) is None and item_of(ana, meeting, item_id) is None
    page = ana.get(f"/m/{meeting}").text
    assert "Q4 goals" not in page and "draft the mentoring plan" not in page


@pytest.mark.parametrize(
    ("path", "fields", "message"),
    [
        ("talking-points/{point}/edit", {"text": "  \n "}, "text must not be empty"),
        ("talking-points/{point}/edit", {"text": "x" * 200_001}, "longer than"),
        (
            "action-items/{item}/edit",
            {"text": "x", "owner": CY, "due": ""},
            "owner must be one of the two people",
        ),
        ("action-items/{item}/edit", {"text": "x", "owner": ANA, "due": "next week"}, "YYYY-MM-DD"),
        ("action-items/{item}/edit", {"text": "", "owner": ANA, "due": ""}, "must not be empty"),
    ],
)
def test_a_bad_form_gets_a_clear_error_and_changes_nothing(
    org: Org, path: str, fields: dict[str, str], message: str
) -> None:
    meeting, _ = org.tokens(0)
    point_id, item_id = seed(org, meeting)
    ana = Browser(org.app(), ANA)
    before = read(ana, meeting)
    answer = ana.post(f"/m/{meeting}/" + path.format(point=point_id, item=item_id), fields)
    assert answer.status_code == 400
    assert message in answer.text and f'href="/m/{meeting}"' in answer.text  # a way back
    assert read(ana, meeting) == before


# -- the API ---------------------------------------------------------------------


def test_patch_changes_only_the_fields_it_names(org: Org) -> None:
    meeting, _ = org.tokens(0)
    point_id, item_id = seed(org, meeting)
    bo = Browser(org.app(), BO)
    points, items = f"{api_base(meeting)}/talking-points", f"{api_base(meeting)}/action-items"

    answer = bo.api("PATCH", f"{items}/{item_id}", {"text": "draft the mentoring plan"})
    assert answer.status_code == 200
    assert answer.json()["text"] == "draft the mentoring plan"
    assert (answer.json()["owner"], answer.json()["due"]) == (BO, "2026-12-01")

    # The owner is matched as an address is everywhere: case does not matter.
    answer = bo.api("PATCH", f"{items}/{item_id}", {"owner": ANA.upper(), "due": "2026-12-15"})
    assert (answer.json()["owner"], answer.json()["due"]) == (ANA, "2026-12-15")
    assert answer.json()["text"] == "draft the mentoring plan"

    answer = bo.api("PATCH", f"{items}/{item_id}", {"due": None})
    assert answer.status_code == 200 and answer.json()["due"] is None

    answer = bo.api("PATCH", f"{items}/{item_id}", {"done": True})
    assert answer.json()["done"] and answer.json()["done_at"]
    assert answer.json()["text"] == "draft the mentoring plan"

    answer = bo.api("PATCH", f"{points}/{point_id}", {"text": "Q4 goals", "done": True})
    assert answer.status_code == 200
    assert answer.json() == {"id": point_id, "text": "Q4 goals", "author": ANA, "done": True}
    assert point_of(bo, meeting, point_id) == answer.json()


def test_delete_answers_204_and_a_second_delete_404(org: Org) -> None:
    meeting, _ = org.tokens(0)
    point_id, item_id = seed(org, meeting)
    ana = Browser(org.app(), ANA)
    for path in (
        f"{api_base(meeting)}/talking-points/{point_id}",
        f"{api_base(meeting)}/action-items/{item_id}",
    ):
        # A DELETE has no body, so it needs no Content-Type: only the CSRF header.
        gone = ana.api("DELETE", path)
        assert gone.status_code == 204 and gone.content == b""
        again = ana.api("DELETE", path)
        assert again.status_code == 404 and again.json() == {"error": "not found"}
    assert point_of(ana, meeting, point_id) is None and item_of(ana, meeting, item_id) is None


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("talking-points", {}, "nothing to change"),
        ("talking-points", {"text": ""}, "text must not be empty"),
        ("talking-points", {"text": None}, "text must be a string"),
        ("talking-points", {"text": "x" * 200_001}, "longer than"),
        ("talking-points", {"done": "yes"}, "true or false"),
        ("talking-points", {"owner": ANA}, "unknown field 'owner'"),
        ("action-items", {}, "nothing to change"),
        ("action-items", {"text": " "}, "text must not be empty"),
        ("action-items", {"owner": CY}, "owner must be one of the two people"),
        ("action-items", {"owner": None}, "owner must be a string"),
        ("action-items", {"due": "1 December"}, "YYYY-MM-DD"),
        ("action-items", {"due": 20261201}, "YYYY-MM-DD"),
        ("action-items", {"text": "x", "tilte": "typo"}, "unknown field 'tilte'"),
    ],
)
def test_a_bad_patch_gets_a_one_line_json_error_and_changes_nothing(
    org: Org, kind: str, body: dict[str, Any], message: str
) -> None:
    meeting, _ = org.tokens(0)
    point_id, item_id = seed(org, meeting)
    ana = Browser(org.app(), ANA)
    before = read(ana, meeting)
    ident = point_id if kind == "talking-points" else item_id
    answer = ana.api("PATCH", f"{api_base(meeting)}/{kind}/{ident}", body)
    assert answer.status_code == 400
    assert message in answer.json()["error"] and "\n" not in answer.json()["error"]
    assert read(ana, meeting) == before


def test_a_patch_needs_json_and_an_id_nobody_has_is_not_found(org: Org) -> None:
    meeting, _ = org.tokens(0)
    point_id, _ = seed(org, meeting)
    ana = Browser(org.app(), ANA)
    ana.get(f"/m/{meeting}")
    cookie = ana.client.cookies.get("__Host-syncd-csrf") or ""
    form = ana.client.patch(
        f"{api_base(meeting)}/talking-points/{point_id}",
        content="text=sneaky",
        headers={"X-CSRF-Token": cookie, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
    for kind in ("talking-points", "action-items"):
        for ident in (999_999, 2**64):
            answer = ana.api("PATCH", f"{api_base(meeting)}/{kind}/{ident}", {"text": "x"})
            assert answer.status_code == 404, (kind, ident)
            assert ana.api("DELETE", f"{api_base(meeting)}/{kind}/{ident}").status_code == 404
    assert point_of(ana, meeting, point_id) is not None


# -- who may edit -------------------------------------------------------------------


def _page_edit(
    browser: Browser, meeting: str, what: str, point: int, item: int, *, csrf: str | None = None
) -> int:
    """Submit the form for ``what``; ``csrf`` is for a browser that sees no form to take it from."""
    paths = {
        "edit point": (f"talking-points/{point}/edit", {"text": "changed"}),
        "delete point": (f"talking-points/{point}/delete", {"confirm": "yes"}),
        "edit item": (f"action-items/{item}/edit", {"text": "changed", "owner": ANA, "due": ""}),
        "delete item": (f"action-items/{item}/delete", {"confirm": "yes"}),
    }
    path, fields = paths[what]
    if csrf is None:
        return browser.post(f"/m/{meeting}/{path}", fields).status_code
    answer = browser.client.post(
        f"/m/{meeting}/{path}", data={**fields, "csrf": csrf}, follow_redirects=False
    )
    return answer.status_code


def _api_edit(
    browser: Browser, meeting: str, what: str, point: int, item: int, *, csrf: str | None = None
) -> int:
    base = api_base(meeting)
    calls = {
        "edit point": ("PATCH", f"{base}/talking-points/{point}", {"text": "changed"}),
        "delete point": ("DELETE", f"{base}/talking-points/{point}", None),
        "edit item": ("PATCH", f"{base}/action-items/{item}", {"text": "changed"}),
        "delete item": ("DELETE", f"{base}/action-items/{item}", None),
    }
    method, path, body = calls[what]
    if csrf is None:
        return browser.api(method, path, body).status_code
    answer = browser.client.request(method, path, json=body, headers={"X-CSRF-Token": csrf})
    assert answer.json() == {"error": "not found"}
    return answer.status_code


EDITS = ["edit point", "delete point", "edit item", "delete item"]


@pytest.mark.parametrize("what", EDITS)
@pytest.mark.parametrize("person", [ANA, BO])
def test_either_person_edits_and_deletes_what_the_other_added(
    org: Org, person: str, what: str
) -> None:
    meeting, _ = org.tokens(0)
    for way, expected in ((_page_edit, 303), (_api_edit, 204 if "delete" in what else 200)):
        point_id, item_id = seed(org, meeting)  # added by Ana
        browser = Browser(org.app(), person)
        assert way(browser, meeting, what, point_id, item_id) == expected
        point, item = point_of(browser, meeting, point_id), item_of(browser, meeting, item_id)
        if what == "delete point":
            assert point is None
        elif what == "delete item":
            assert item is None
        elif what == "edit point":
            assert point is not None and point["text"] == "changed"
        else:
            assert item is not None and item["text"] == "changed"


@pytest.mark.parametrize("what", EDITS)
def test_an_admin_reads_but_edits_and_deletes_nothing(org: Org, what: str) -> None:
    meeting, _ = org.tokens(0)
    point_id, item_id = seed(org, meeting)
    set_mark(org, ANA, None)  # the seeding edits marked it; a refused edit must not
    admin = Browser(org.app(), ADMIN)
    before = read(admin, meeting)
    page = admin.get(f"/m/{meeting}").text
    assert '<details class="edit' not in page and "/edit" not in page and "/delete" not in page
    assert _page_edit(admin, meeting, what, point_id, item_id) == 403
    assert _api_edit(admin, meeting, what, point_id, item_id) == 403
    assert read(admin, meeting) == before
    assert all(mark is None for mark in marks(org).values())


@pytest.mark.parametrize("what", EDITS)
def test_a_stranger_gets_404_and_changes_nothing(org: Org, what: str) -> None:
    meeting, _ = org.tokens(0)
    point_id, item_id = seed(org, meeting)
    stranger, ana = Browser(org.app(), CY), Browser(org.app(), ANA)
    before = read(ana, meeting)
    # The stranger's browser has a CSRF cookie of its own (from the 404 page).
    stranger.get(f"/m/{meeting}")
    cookie = stranger.client.cookies.get("__Host-syncd-csrf")
    assert cookie
    assert _page_edit(stranger, meeting, what, point_id, item_id, csrf=cookie) == 404
    assert _api_edit(stranger, meeting, what, point_id, item_id, csrf=cookie) == 404
    assert read(ana, meeting) == before


def test_in_link_mode_the_link_edits_and_the_author_is_kept(org: Org) -> None:
    meeting, _ = org.tokens(0)
    point_id, item_id = seed(org, meeting)
    anyone = Browser(org.app(WebSettings(sign_in="link")))
    assert "Edit this talking point" in anyone.get(f"/m/{meeting}").text
    assert _page_edit(anyone, meeting, "edit point", point_id, item_id) == 303
    assert _api_edit(anyone, meeting, "edit item", point_id, item_id) == 200
    point, item = point_of(anyone, meeting, point_id), item_of(anyone, meeting, item_id)
    assert point is not None and (point["text"], point["author"]) == ("changed", ANA)
    assert item is not None and (item["text"], item["author"]) == ("changed", ANA)
    assert _api_edit(anyone, meeting, "delete item", point_id, item_id) == 204
    assert _page_edit(anyone, meeting, "delete point", point_id, item_id) == 303
    assert point_of(anyone, meeting, point_id) is None and item_of(anyone, meeting, item_id) is None


@pytest.mark.parametrize("what", EDITS)
def test_an_edit_without_the_csrf_token_is_refused(org: Org, what: str) -> None:
    meeting, _ = org.tokens(0)
    point_id, item_id = seed(org, meeting)
    ana = Browser(org.app(), ANA)
    before = read(ana, meeting)
    action = what.split()[0]
    kind = "talking-points" if "point" in what else "action-items"
    ident = point_id if "point" in what else item_id
    form = ana.client.post(
        f"/m/{meeting}/{kind}/{ident}/{action}",
        data={"text": "no token", "owner": ANA},
        follow_redirects=False,
    )
    assert form.status_code == 403 and "Please try again" in form.text
    method = "PATCH" if action == "edit" else "DELETE"
    api = ana.api(method, f"{api_base(meeting)}/{kind}/{ident}", {"text": "x"}, csrf=False)
    assert api.status_code == 403 and "X-CSRF-Token" in api.json()["error"]
    assert read(ana, meeting) == before


def test_a_point_of_another_meeting_and_an_item_of_another_pair_are_not_found(org: Org) -> None:
    meeting, _ = org.tokens(0)
    later, _ = org.tokens(1)
    point_id, item_id = seed(org, meeting)
    uid = weekly(org, CY, ANA, title="Cy / Ana 1:1")
    org.settle()
    ana = Browser(org.app(), ANA)
    with org.session() as session:
        other = session.scalars(select(Meeting.token).where(Meeting.ical_uid == uid)).first()
    assert other
    # A talking point belongs to its own meeting, even within the pair.
    assert _api_edit(ana, later, "edit point", point_id, item_id) == 404
    # An action item is the pair's; through another pair's meeting it is nobody's.
    assert _api_edit(ana, other, "edit item", point_id, item_id) == 404
    assert _page_edit(ana, other, "delete item", point_id, item_id) == 404
    point, item = point_of(ana, meeting, point_id), item_of(ana, meeting, item_id)
    assert point is not None and point["text"] == "Q3 goals"
    assert item is not None and item["text"] == "draft the plan"


# -- carried over, past meetings, and the invite -------------------------------------


def test_a_carried_over_item_is_edited_and_deleted_on_a_later_meeting(org: Org) -> None:
    first, _ = org.tokens(0)
    second, _ = org.tokens(1)
    _, item_id = seed(org, first)
    bo = Browser(org.app(), BO)
    carried = section(bo.get(f"/m/{second}").text, "carried")
    assert f'action="/m/{second}/action-items/{item_id}/edit"' in carried
    answer = bo.post(
        f"/m/{second}/action-items/{item_id}/edit",
        {"text": "draft the plan, v2", "owner": BO, "due": "2026-12-10"},
    )
    assert answer.status_code == 303
    item = read(bo, second)["carried_action_items"][0]
    assert (item["text"], item["due"], item["origin"]["token"]) == (
        "draft the plan, v2",
        "2026-12-10",
        first,
    )
    # It is the same item, so the first meeting shows the new text too.
    assert read(bo, first)["action_items"][0]["text"] == "draft the plan, v2"
    assert bo.api("DELETE", f"{api_base(second)}/action-items/{item_id}").status_code == 204
    assert read(bo, second)["carried_action_items"] == read(bo, first)["action_items"] == []


def test_items_of_a_meeting_that_has_ended_stay_editable(org: Org) -> None:
    meeting, _ = org.tokens(0)
    point_id, item_id = seed(org, meeting)
    org.now = tuesday(0) + timedelta(days=1)  # the meeting was yesterday
    ana = Browser(org.app(), ANA)
    assert "Edit this talking point" in ana.get(f"/m/{meeting}").text
    point = ana.api("PATCH", f"{api_base(meeting)}/talking-points/{point_id}", {"text": "noted"})
    item = ana.api("PATCH", f"{api_base(meeting)}/action-items/{item_id}", {"due": "2026-12-20"})
    assert (point.status_code, item.status_code) == (200, 200)
    assert (point.json()["text"], item.json()["due"]) == ("noted", "2026-12-20")


def test_after_an_edit_the_next_invite_shows_the_item_as_edited(org: Org) -> None:
    first, _ = org.tokens(0)
    _, item_id = seed(org, first)
    org.now = tuesday(0) + timedelta(minutes=31)  # the first meeting has ended
    org.sync()
    assert "draft the plan" in (org.block_in(ANA, org.uid, tuesday(1)) or "")
    past_before = org.body(ANA, org.uid, tuesday(0))

    bo = Browser(org.app(), BO)
    second, _ = org.tokens(1)
    answer = bo.post(
        f"/m/{second}/action-items/{item_id}/edit",
        {"text": "send the mentoring plan", "owner": ANA, "due": ""},
    )
    assert answer.status_code == 303
    # Ana organizes: her calendar is due within the debounce, the scheduler's next tick.
    assert marks(org)[ANA] == org.now + push.DEBOUNCE
    org.sync()
    block = org.block_in(ANA, org.uid, tuesday(1)) or ""
    assert "send the mentoring plan" in block and "draft the plan" not in block
    assert "ana: send the mentoring plan" in block
    # The invite of the meeting that has ended is never rewritten.
    assert org.body(ANA, org.uid, tuesday(0)) == past_before

    org.now += timedelta(minutes=5)
    assert bo.api("DELETE", f"{api_base(second)}/action-items/{item_id}").status_code == 204
    assert marks(org)[ANA] == org.now + push.DEBOUNCE
    org.sync()
    assert "send the mentoring plan" not in (org.block_in(ANA, org.uid, tuesday(1)) or "")


def test_an_edited_talking_point_reaches_its_own_invite(org: Org) -> None:
    second, _ = org.tokens(1)
    ana = Browser(org.app(), ANA)
    point = ana.api("POST", f"{api_base(second)}/talking-points", {"text": "hiring plan"}).json()
    org.sync()
    assert "hiring plan" in (org.block_in(ANA, org.uid, tuesday(1)) or "")
    assert (
        ana.post(
            f"/m/{second}/talking-points/{point['id']}/edit", {"text": "hiring plan for Q1"}
        ).status_code
        == 303
    )
    org.sync()
    assert "hiring plan for Q1" in (org.block_in(ANA, org.uid, tuesday(1)) or "")


@pytest.mark.parametrize("kind", ["talking-points", "action-items"])
def test_without_javascript_a_delete_asks_first_and_deletes_only_when_confirmed(
    org: Org, kind: str
) -> None:
    meeting, _ = org.tokens(0)
    point_id, item_id = seed(org, meeting)
    ident = point_id if kind == "talking-points" else item_id
    text = "Q3 goals" if kind == "talking-points" else "draft the plan"
    look = point_of if kind == "talking-points" else item_of
    bo = Browser(org.app(), BO)
    path = f"/m/{meeting}/{kind}/{ident}/delete"

    asked = bo.post(path, {})
    assert asked.status_code == 200 and text in asked.text
    assert f'action="{path}"' in asked.text and 'name="confirm" value="yes"' in asked.text
    assert f'href="/m/{meeting}">Keep it' in asked.text
    assert look(bo, meeting, ident) is not None  # asking deletes nothing

    cy = Browser(org.app(), CY)
    cy.get("/")  # any page gives the browser its form token
    token = cy.client.cookies.get("__Host-syncd-csrf")
    assert token and cy.client.post(path, data={"csrf": token}).status_code == 404  # not theirs
    assert Browser(org.app(), ADMIN).post(path, {}, page=f"/m/{meeting}").status_code == 403
    expired = bo.client.post(path, data={"csrf": "A" * 43}, follow_redirects=False)
    assert expired.status_code == 403

    answer = bo.post(path, {"confirm": "yes"})
    assert answer.status_code == 303 and look(bo, meeting, ident) is None
