"""Meeting times in the viewer's zone: the configured default, or their own choice."""

from __future__ import annotations

import dataclasses

import pytest

from syncd.web import zones
from syncd.web.settings import WebSettings
from tests.unit.web.conftest import BEHIND_PROXY, Browser, Org
from tests.unit.world import ANA

BERLIN = dataclasses.replace(BEHIND_PROXY, zone="Europe/Berlin")
COOKIE = "__Host-syncd-zone"


def test_the_default_zone_comes_from_the_settings(org: Org) -> None:
    meeting, pair = org.tokens(0)
    ana = Browser(org.app(BERLIN), ANA)
    page = ana.get(f"/m/{meeting}").text
    # 10:00 UTC on Tuesday 24 Nov 2026 is 11:00 in Berlin.
    assert "Tue 24 Nov 2026, 11:00" in page and "11:30" in page
    assert '<abbr title="Europe/Berlin">CET</abbr>' in page
    assert '<option value="Europe/Berlin" selected>' in page
    assert "UTC for now" not in page
    history = ana.get(f"/p/{pair}").text
    assert "Times are in Europe/Berlin." in history and "24 Nov 2026, 11:00 CET" in history
    assert "UTC for now" not in history
    markdown = ana.get(f"/p/{pair}/export.md").text
    assert "Times are in Europe/Berlin." in markdown and "2026-11-24 11:00 CET" in markdown
    assert "UTC" not in markdown
    exported = ana.get(f"/p/{pair}/export.json").json()
    assert exported["timezone"] == "Europe/Berlin"
    assert "2026-11-24T11:00:00+01:00" in [m["start"] for m in exported["meetings"]]


def test_the_viewers_choice_changes_what_the_pages_show(org: Org) -> None:
    meeting, pair = org.tokens(0)
    ana = Browser(org.app(BERLIN), ANA)
    answer = ana.post(f"/m/{meeting}/zone", {"zone": "America/New_York"})
    assert answer.status_code == 303 and answer.headers["location"] == f"/m/{meeting}"
    cookie = answer.headers["set-cookie"]
    assert "samesite=lax" in cookie.lower() and "secure" in cookie.lower()
    page = ana.get(f"/m/{meeting}").text
    assert "Tue 24 Nov 2026, 05:00" in page
    assert '<abbr title="America/New_York">EST</abbr>' in page
    assert '<option value="America/New_York" selected>' in page
    assert "2026-11-24 05:00 EST" in ana.get(f"/p/{pair}/export.md").text
    # A zone outside the common list is offered too once chosen.
    ana.post(f"/m/{meeting}/zone", {"zone": "Asia/Kathmandu"})
    page = ana.get(f"/m/{meeting}").text
    assert '<option value="Asia/Kathmandu" selected>' in page and "15:45" in page
    # Another browser still sees the default.
    assert "Tue 24 Nov 2026, 11:00" in Browser(org.app(BERLIN), ANA).get(f"/m/{meeting}").text


@pytest.mark.parametrize(
    "bogus", ["Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime", "", "Europe", "x" * 500]
)
def test_a_bogus_cookie_is_ignored(org: Org, bogus: str) -> None:
    meeting, pair = org.tokens(0)
    ana = Browser(org.app(BERLIN), ANA)
    ana.client.cookies.set(COOKIE, bogus, domain="testserver")
    page = ana.get(f"/m/{meeting}")
    assert page.status_code == 200
    assert '<abbr title="Europe/Berlin">CET</abbr>' in page.text
    assert "2026-11-24 11:00 CET" in ana.get(f"/p/{pair}/export.md").text


def test_a_bogus_choice_is_refused_and_the_form_needs_csrf(org: Org) -> None:
    meeting, _ = org.tokens(0)
    ana = Browser(org.app(BERLIN), ANA)
    refused = ana.post(f"/m/{meeting}/zone", {"zone": "Mars/Olympus_Mons"})
    assert refused.status_code == 400
    assert COOKIE not in refused.headers.get("set-cookie", "")
    no_csrf = ana.client.post(
        f"/m/{meeting}/zone", data={"zone": "Asia/Tokyo"}, follow_redirects=False
    )
    assert no_csrf.status_code == 403
    assert COOKIE not in ana.client.cookies


def test_a_stranger_or_wrong_token_gets_404(org: Org) -> None:
    meeting, _ = org.tokens(0)
    stranger = Browser(org.app(BERLIN), "cy@example.org")
    stranger.get(f"/m/{meeting}")
    csrf = stranger.client.cookies.get("__Host-syncd-csrf")
    answer = stranger.client.post(
        f"/m/{meeting}/zone", data={"zone": "Asia/Tokyo", "csrf": csrf}, follow_redirects=False
    )
    assert answer.status_code == 404


def test_settings_refuse_an_unknown_zone() -> None:
    with pytest.raises(ValueError, match="time zone"):
        WebSettings(zone="Mars/Olympus_Mons")
    assert zones.valid("Europe/Berlin") is not None and zones.valid("Nope/Never") is None
