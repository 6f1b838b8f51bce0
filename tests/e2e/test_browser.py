"""Two people in real browsers on one agenda page: what each of them sees.

Playwright (sync API) drives Debian's headless Chromium (``/usr/bin/chromium``;
``.ci/run`` installs it, and Playwright's own browser download is never used)
against syncd's web app served by uvicorn on loopback. Sign-in is the
proxy-header mode: the browser's peer address is 127.0.0.1, trusted as the
proxy, and each browser context sends its person's address in the header,
as an authenticating proxy would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import select

from syncd.store import connect, migrate
from syncd.store.models import Meeting
from syncd.web.app import create_app
from syncd.web.settings import WebSettings
from tests.e2e.servers import Webhook
from tests.unit.world import ANA, BO, TEMPLATE, World, tuesday, weekly

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "test-artifacts" / "meeting-page.png"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; "
    ".ci/run installs it)",
)

POINT = "Plan the Q1 offsite together"
# A long word with no break in it: the page must wrap it, not overflow.
LONG_POINT = "Read the design doc https://docs.example.org/" + "verylongpathsegment" * 8
ITEM = "Book the offsite venue"
PRIVATE = "Ask Bo about the promotion timeline (private to Ana)"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """The small organization on a fresh SQLite store."""
    engine = connect(f"sqlite:///{tmp_path / 'syncd.db'}")
    migrate(engine)
    world = World(engine)
    yield world
    engine.dispose()


def first_meeting_token(world: World, uid: str) -> str:
    with world.session() as session:
        meetings = session.scalars(select(Meeting).where(Meeting.ical_uid == uid)).all()
        assert len(meetings) >= 2, "the pair should have at least two meetings"
        return next(m.token for m in meetings if m.original_start == tuesday(0))


def test_two_people_share_an_agenda_in_real_browsers(world: World) -> None:
    uid = weekly(world)  # Ana organizes, Bo attends
    world.settle()
    settings = WebSettings(
        sign_in="proxy-header", trusted_proxies=("127.0.0.1",), secure_cookies=False
    )
    app = create_app(world.factory, clock=lambda: world.now, web=settings)
    token = first_meeting_token(world, uid)

    with Webhook(app) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS, timeout=20_000
        )
        try:
            pages: dict[str, Any] = {}
            for person in (ANA, BO):
                context = browser.new_context(
                    extra_http_headers={settings.proxy_header: person},
                    viewport={"width": 1024, "height": 768},
                )
                context.set_default_timeout(5_000)
                pages[person] = context.new_page()
            ana, bo = pages[ANA], pages[BO]
            url = f"{base}/m/{token}"

            def reload(page: Any) -> None:
                """Load the page afresh, and mark this document to tell it from any later one."""
                page.goto(url)
                expect(page.get_by_role("heading", name="Talking points")).to_be_visible()
                page.evaluate("window.__marker = 1")

            for page in (ana, bo):
                reload(page)

            def points(page: Any) -> Any:
                return page.locator("#talking-points li")

            def items(page: Any) -> Any:
                return page.locator("#action-items li")

            def submit(page: Any, button: Any) -> None:
                """Click a form's button: app.js posts it and updates the page in place.

                The section is ``aria-busy`` while the post is on its way; the
                marker set on this document is still there: no navigation.
                """
                button.click()
                expect(page.locator("main [aria-busy]")).to_have_count(0)
                assert page.evaluate("window.__marker") == 1, "the page was reloaded"

            # Ana adds a talking point (and a long one, to see how the page wraps it).
            for text in (POINT, LONG_POINT):
                ana.get_by_label("New talking point").fill(text)
                submit(ana, ana.locator("#talking-points").get_by_role("button", name="Add"))
                # Focus is back in the field, ready for the next point.
                expect(ana.get_by_label("New talking point")).to_be_focused()
                expect(ana.get_by_label("New talking point")).to_have_value("")
            ana_point = points(ana).filter(has_text=POINT)
            expect(ana_point).to_have_count(1)
            expect(ana_point).to_contain_text(f"added by {ANA}")
            expect(ana.get_by_role("status")).to_have_text("Talking point added.")

            # Ana moves the long point up, above the first: focus stays on that point's moves.
            def order(page: Any) -> list[str]:
                texts: list[str] = points(page).locator(".text").all_inner_texts()
                return [t for t in texts if t in (POINT, LONG_POINT)]

            assert order(ana) == [POINT, LONG_POINT]
            long_point = points(ana).filter(has_text="verylongpathsegment")
            submit(ana, long_point.get_by_role("button", name="Move up"))
            assert order(ana) == [LONG_POINT, POINT]
            expect(
                points(ana).filter(has_text="verylongpathsegment").locator(":focus")
            ).to_have_count(1)

            # Bo reloads and sees it, with Ana named as its author.
            reload(bo)
            bo_point = points(bo).filter(has_text=POINT)
            expect(bo_point).to_have_count(1)
            expect(bo_point).to_contain_text(f"added by {ANA}")

            # Bo adds an action item owned by Ana.
            bo.get_by_label("New action item").fill(ITEM)
            bo.get_by_label("Owner").select_option(ANA)
            submit(bo, bo.locator("#action-items").get_by_role("button", name="Add"))
            bo_item = items(bo).filter(has_text=ITEM)
            expect(bo_item).to_have_count(1)
            expect(bo_item).to_contain_text("ana:")
            expect(bo_item).to_contain_text(f"added by {BO}")

            # Ana checks the talking point off: it shows as done, with a way to reopen it.
            reload(ana)
            check_off = points(ana).filter(has_text=POINT).get_by_role("button", name="Check off")
            submit(ana, check_off)
            done = points(ana).filter(has_text=POINT)
            expect(done).to_have_class(re.compile(r"\bdone\b"))
            expect(done.get_by_role("button", name="Reopen")).to_be_visible()
            # Keyboard users stay on the control they used, now saying "Reopen".
            expect(done.get_by_role("button", name="Reopen")).to_be_focused()
            expect(ana.get_by_role("status")).to_have_text(f"Checked off: {POINT}.")

            # Ana writes a private note; it is there for her after a reload.
            ana.get_by_label("Only you ever see these.").fill(PRIVATE)
            submit(ana, ana.get_by_role("button", name="Save private notes"))
            reload(ana)
            expect(ana.get_by_label("Only you ever see these.")).to_have_value(PRIVATE)

            # Bo: the point is done for him too, and Ana's private note is nowhere.
            reload(bo)
            expect(points(bo).filter(has_text=POINT)).to_have_class(re.compile(r"\bdone\b"))
            expect(bo.get_by_label("Only you ever see these.")).to_have_value("")
            assert PRIVATE not in bo.content()
            assert PRIVATE in ana.content()

            # Both see the action item, owned by Ana.
            for page in (ana, bo):
                item = items(page).filter(has_text=ITEM)
                expect(item).to_have_count(1)
                expect(item).to_contain_text("ana:")

            # The long unbroken point wraps: nothing scrolls sideways.
            assert ana.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
                "the meeting page overflows horizontally"
            )

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            SCREENSHOT.unlink(missing_ok=True)
            ana.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()

    assert SCREENSHOT.is_file()
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_javascript_the_plain_forms_still_work(world: World) -> None:
    """Issue 5: the page works with no script at all; each form posts and comes back."""
    uid = weekly(world)
    world.settle()
    settings = WebSettings(
        sign_in="proxy-header", trusted_proxies=("127.0.0.1",), secure_cookies=False
    )
    app = create_app(world.factory, clock=lambda: world.now, web=settings)
    token = first_meeting_token(world, uid)

    with Webhook(app) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS, timeout=20_000
        )
        try:
            context = browser.new_context(
                extra_http_headers={settings.proxy_header: ANA}, java_script_enabled=False
            )
            context.set_default_timeout(5_000)
            page = context.new_page()
            page.goto(f"{base}/m/{token}")
            expect(page.get_by_role("status")).to_have_count(0)  # app.js did not run
            page.get_by_label("New talking point").fill(POINT)
            with page.expect_navigation(wait_until="load"):
                page.locator("#talking-points").get_by_role("button", name="Add").click()
            assert page.url.endswith(f"/m/{token}#talking-points")
            point = page.locator("#talking-points li").filter(has_text=POINT)
            expect(point).to_have_count(1)
            expect(point).to_contain_text(f"added by {ANA}")

            with page.expect_navigation(wait_until="load"):
                point.get_by_role("button", name="Check off").click()
            expect(page.locator("#talking-points li").filter(has_text=POINT)).to_have_class(
                re.compile(r"\bdone\b")
            )
        finally:
            browser.close()


def test_a_talking_point_is_edited_in_place_and_stays_edited(world: World) -> None:
    """The "Edit" disclosure: the caret lands in the text, Enter saves without a reload."""
    uid = weekly(world)
    world.settle()
    settings = WebSettings(
        sign_in="proxy-header", trusted_proxies=("127.0.0.1",), secure_cookies=False
    )
    app = create_app(world.factory, clock=lambda: world.now, web=settings)
    token = first_meeting_token(world, uid)
    before, after = TEMPLATE[0], "What is top of mind this quarter?"

    with Webhook(app) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS, timeout=20_000
        )
        try:
            context = browser.new_context(extra_http_headers={settings.proxy_header: ANA})
            context.set_default_timeout(5_000)
            page = context.new_page()
            page.goto(f"{base}/m/{token}")
            page.evaluate("window.__marker = 1")
            points = page.locator("#talking-points li")

            point = points.filter(has=page.locator(".text", has_text=before))
            point.locator("summary").click()
            field = point.get_by_label("Talking point")
            expect(field).to_be_focused()
            field.fill(after)
            field.press("Enter")
            expect(page.locator("main [aria-busy]")).to_have_count(0)
            assert page.evaluate("window.__marker") == 1, "the page was reloaded"

            edited = points.filter(has=page.locator(".text", has_text=after))
            expect(edited).to_have_count(1)
            expect(edited).to_contain_text("from the template")  # who raised it stays
            expect(edited.locator("summary")).to_be_focused()
            expect(page.get_by_role("status")).to_have_text(f"Talking point saved: {after}.")

            page.reload()
            texts = points.locator(".text").all_inner_texts()
            assert after in texts and before not in texts
        finally:
            browser.close()
