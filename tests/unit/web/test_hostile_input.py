"""Whatever people (or invites) type is stored exactly and shown as text, never as markup."""

from __future__ import annotations

import html

import pytest

from tests.unit.web.conftest import Browser, Org
from tests.unit.world import ANA, BO

HOSTILE = [
    "<script>alert(1)</script>",
    "javascript:alert(1)",
    '"><img src=x onerror=alert(1)>',
    "'; --{{ 7*7 }}{% raw %}",
    "emoji 🙂👩🏽‍💻 and a flag 🇳🇱",
    "نقطة للنقاش: مراجعة الأهداف",  # right-to-left
    "mixed \u202eevil\u202c direction and\nnew lines\r\n\ttabs",
    "x" * 100_000,
]


def _ids(value: str) -> str:
    return value[:20]


@pytest.mark.parametrize("text", HOSTILE, ids=_ids)
def test_hostile_text_is_stored_intact_and_shown_as_text(org: Org, text: str) -> None:
    ana = Browser(org.app(), ANA)
    meeting, pair = org.tokens(0)
    later, _ = org.tokens(1)
    assert ana.post(f"/m/{meeting}/talking-points", {"text": text}).status_code == 303
    assert ana.post(f"/m/{meeting}/action-items", {"text": text, "owner": BO}).status_code == 303
    assert ana.post(f"/m/{meeting}/notes/shared", {"body": text}).status_code == 303
    assert ana.post(f"/m/{meeting}/notes/private", {"body": text}).status_code == 303

    data = ana.get(f"/api/v1/meetings/{meeting}").json()
    assert data["talking_points"][-1]["text"] == text
    assert data["action_items"][-1]["text"] == text
    assert data["notes"]["shared"]["body"] == text
    assert data["notes"]["private"]["body"] == text
    assert ana.get(f"/p/{pair}/export.json").json()["open_action_items"][-1]["text"] == text

    for page in (
        ana.get(f"/m/{meeting}").text,
        ana.get(f"/m/{later}").text,  # carried over
        ana.get(f"/p/{pair}").text,
    ):
        _shown_as_text(page, text)


def _shown_as_text(page: str, text: str) -> None:
    # no element made of what someone typed (the one script is our own app.js)
    assert page.lower().count("<script") == page.count('<script src="/static/app.js" defer>') == 1
    assert "<img" not in page.lower()
    assert 'href="javascript:' not in page
    if "<" in text or '"' in text:
        assert text not in page  # escaped, not raw
    # ... and what a person reads is exactly what was typed
    assert text.replace("\r\n", "\n") in html.unescape(page).replace("\r\n", "\n")


@pytest.mark.parametrize("text", HOSTILE, ids=_ids)
def test_hostile_text_through_the_api_reads_back_the_same(org: Org, text: str) -> None:
    bo = Browser(org.app(), BO)
    meeting, _ = org.tokens(0)
    base = f"/api/v1/meetings/{meeting}"
    point = bo.api("POST", f"{base}/talking-points", {"text": text})
    item = bo.api("POST", f"{base}/action-items", {"text": text, "owner": ANA, "due": None})
    note = bo.api("PUT", f"{base}/notes/shared", {"body": text})
    assert (point.status_code, item.status_code, note.status_code) == (201, 201, 200)
    assert point.json()["text"] == item.json()["text"] == note.json()["body"] == text
    data = bo.get(base).json()
    assert data["talking_points"][-1]["text"] == text and data["notes"]["shared"]["body"] == text


def test_a_hostile_title_from_an_invite_is_shown_as_text(org: Org) -> None:
    from tests.unit.world import CY, weekly

    uid = weekly(org, ANA, CY, title='<script>alert("title")</script> 1:1')
    org.settle()
    from sqlalchemy import select

    from syncd.store.models import Meeting

    with org.session() as session:
        token = session.scalars(select(Meeting.token).where(Meeting.ical_uid == uid)).first()
    page = Browser(org.app(), ANA).get(f"/m/{token}").text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt; 1:1" in page


def test_bad_input_gets_a_clear_error(org: Org) -> None:
    ana = Browser(org.app(), ANA)
    meeting, _ = org.tokens(0)
    base = f"/api/v1/meetings/{meeting}"
    cases = [
        ("POST", f"{base}/talking-points", {"text": "   "}, "must not be empty"),
        ("POST", f"{base}/talking-points", {"text": 5}, "must be a string"),
        ("POST", f"{base}/talking-points", {"text": "x" * 200_001}, "longer than"),
        ("POST", f"{base}/talking-points", {"text": "nul\x00"}, "NUL"),
        ("POST", f"{base}/action-items", {"text": "x", "owner": "cy@example.org"}, "owner"),
        ("POST", f"{base}/action-items", {"text": "x", "owner": ANA, "due": "soon"}, "date"),
        ("POST", f"{base}/action-items/999999/done", {}, "not found"),
        ("POST", f"{base}/talking-points/1/done", {"done": "yes"}, "true or false"),
        ("PUT", f"{base}/notes/shared", ["not", "an", "object"], "JSON object"),
    ]
    for method, path, body, message in cases:
        answer = ana.api(method, path, body)
        assert answer.status_code in (400, 404), (path, body)
        assert message in answer.json()["error"], (path, body)
    page = ana.post(f"/m/{meeting}/action-items", {"text": "x", "owner": "cy@example.org"})
    assert page.status_code == 400 and "owner must be one of the two people" in page.text


@pytest.mark.parametrize("text", HOSTILE, ids=_ids)
def test_hostile_text_in_an_edit_is_stored_intact_and_shown_as_text(org: Org, text: str) -> None:
    """Edits take the same path as additions: the page's form and the API's PATCH."""
    ana, bo = Browser(org.app(), ANA), Browser(org.app(), BO)
    meeting, pair = org.tokens(0)
    later, _ = org.tokens(1)
    base = f"/api/v1/meetings/{meeting}"
    point = ana.api("POST", f"{base}/talking-points", {"text": "plain"}).json()
    item = ana.api("POST", f"{base}/action-items", {"text": "plain", "owner": BO}).json()
    edited = ana.post(f"/m/{meeting}/talking-points/{point['id']}/edit", {"text": text})
    assert edited.status_code == 303
    patched = bo.api("PATCH", f"{base}/action-items/{item['id']}", {"text": text})
    assert patched.status_code == 200 and patched.json()["text"] == text

    data = ana.get(base).json()
    assert next(p for p in data["talking_points"] if p["id"] == point["id"])["text"] == text
    assert data["action_items"][-1]["text"] == text
    for page in (
        ana.get(f"/m/{meeting}").text,  # in the item and in its edit form
        ana.get(f"/m/{later}").text,  # carried over, with its edit form
        ana.get(f"/p/{pair}").text,
    ):
        _shown_as_text(page, text)
