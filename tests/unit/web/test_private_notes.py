"""Private notes: only their author ever sees them, on no page, API answer or export."""

from __future__ import annotations

from tests.unit.web.conftest import ADMIN, Browser, Org
from tests.unit.world import ANA, BO

SECRET = "Secret of Ana: asking for a raise"


def test_a_private_note_is_seen_by_its_author_only(org: Org) -> None:
    ana, bo, admin = Browser(org.app(), ANA), Browser(org.app(), BO), Browser(org.app(), ADMIN)
    meeting, pair = org.tokens(0)
    assert ana.post(f"/m/{meeting}/notes/private", {"body": SECRET}).status_code == 303
    assert ana.post(f"/m/{meeting}/notes/shared", {"body": "shared words"}).status_code == 303
    bo_answer = bo.api("PUT", f"/api/v1/meetings/{meeting}/notes/private", {"body": "Bo own note"})
    assert bo_answer.status_code == 200 and bo_answer.json()["body"] == "Bo own note"

    assert SECRET in ana.get(f"/m/{meeting}").text
    assert ana.get(f"/api/v1/meetings/{meeting}").json()["notes"]["private"]["body"] == SECRET
    assert SECRET in ana.get(f"/p/{pair}").text  # her own, in her own history

    for other in (bo, admin):
        for path in (
            f"/m/{meeting}",
            f"/api/v1/meetings/{meeting}",
            f"/p/{pair}",
            f"/p/{pair}/export.md",
            f"/p/{pair}/export.json",
        ):
            answer = other.get(path)
            assert answer.status_code == 200
            assert "raise" not in answer.text, (other, path)
            assert "shared words" in answer.text or path.endswith(meeting)
    assert bo.get(f"/api/v1/meetings/{meeting}").json()["notes"]["private"]["body"] == "Bo own note"
    assert "Bo own note" not in ana.get(f"/m/{meeting}").text
    assert "Bo own note" not in ana.get(f"/api/v1/meetings/{meeting}").text


def test_exports_hold_no_private_note_at_all_not_even_the_viewers_own(org: Org) -> None:
    ana = Browser(org.app(), ANA)
    meeting, pair = org.tokens(0)
    ana.post(f"/m/{meeting}/notes/private", {"body": SECRET})
    assert "raise" not in ana.get(f"/p/{pair}/export.md").text
    assert "raise" not in ana.get(f"/p/{pair}/export.json").text


def test_a_search_does_not_reach_into_private_notes(org: Org) -> None:
    ana, bo = Browser(org.app(), ANA), Browser(org.app(), BO)
    meeting, pair = org.tokens(0)
    ana.post(f"/m/{meeting}/notes/private", {"body": SECRET})
    assert "Nothing matches." in bo.get(f"/p/{pair}", params={"q": "raise"}).text
