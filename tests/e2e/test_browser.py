"""Two people in real browsers, at desktop and phone size: what each of them sees and does.

Playwright (sync API) drives Debian's headless Chromium (``/usr/bin/chromium``;
``.ci/run`` installs it, and Playwright's own browser download is never used)
against syncd's web app served by uvicorn on loopback. Sign-in is the
proxy-header mode: the browser's peer address is 127.0.0.1, trusted as the
proxy, and each browser context sends its person's address in the header,
as an authenticating proxy would.

Screenshots of each page at each size land in ``test-artifacts/`` (a CI
artifact and what a reviewer looks at); axe-core, injected by
axe-playwright-python, judges the same pages for accessibility.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect, sync_playwright

from syncd.store import connect, migrate
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
ARTIFACTS = REPO / "test-artifacts"
SIZES = {"desktop": (1280, 900), "phone": (375, 800)}
SETTINGS = WebSettings(sign_in="proxy-header", trusted_proxies=("127.0.0.1",), secure_cookies=False)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; "
    ".ci/run installs it)",
)

POINT = "Plan the Q1 offsite together"
# A long word with no break in it: the page must wrap it, not overflow.
LONG_POINT = "Read the design doc https://docs.example.org/" + "verylongpathsegment" * 8
LEFT_OPEN = "Conference budget for next year"
ITEM = "Book the offsite venue"
PRIVATE = "Ask Bo about the promotion timeline (private to Ana)"
_LINK = re.compile(r"https://agenda\.example\.org/m/(\S+)")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """The small organization on a fresh SQLite store."""
    engine = connect(f"sqlite:///{tmp_path / 'syncd.db'}")
    migrate(engine)
    world = World(engine)
    yield world
    engine.dispose()


def invite_token(world: World, uid: str, week: int) -> str:
    """The agenda token in the link of Ana's invite for ``week``: where people start."""
    text = world.block_in(ANA, uid, tuesday(week))
    assert text is not None, "the invite carries no block"
    found = _LINK.search(text)
    assert found, text
    return found.group(1)


class Site:
    """The app on loopback and one Chromium; a browser context per person and size."""

    def __init__(self, base: str, browser: Any) -> None:
        self.base = base
        self.browser = browser

    def person(self, who: str, size: str = "desktop", *, script: bool = True) -> Any:
        width, height = SIZES[size]
        context = self.browser.new_context(
            extra_http_headers={SETTINGS.proxy_header: who},
            viewport={"width": width, "height": height},
            java_script_enabled=script,
        )
        context.set_default_timeout(6_000)
        return context.new_page()


@contextmanager
def site(world: World) -> Iterator[Site]:
    app = create_app(world.factory, clock=lambda: world.now, web=SETTINGS)
    with Webhook(app) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS, timeout=20_000
        )
        try:
            yield Site(base, browser)
        finally:
            browser.close()


def settled(page: Any) -> None:
    """Wait for app.js to finish an in-place update, and check there was no navigation."""
    expect(page.locator("main [aria-busy]")).to_have_count(0)
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"


def open_page(page: Any, url: str) -> None:
    """Load afresh, and mark this document to tell it from any later one."""
    page.goto(url)
    expect(page.locator("h1")).to_be_visible()
    page.evaluate("window.__marker = 1")


def points(page: Any) -> Any:
    return page.locator("#talking-points ul.points > li")


def texts(page: Any) -> list[str]:
    found: list[str] = points(page).locator(".text").all_inner_texts()
    return found


def shoot(page: Any, name: str, size: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}-{size}.png"
    path.unlink(missing_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def no_sideways_scroll(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
        f"{page.url} overflows horizontally"
    )


@pytest.mark.parametrize("size", list(SIZES))
def test_two_people_run_their_1on1_from_the_invite_link(world: World, size: str) -> None:
    uid = weekly(world)  # Ana organizes, Bo attends
    world.settle()
    week0 = invite_token(world, uid, 0)

    with site(world) as s:
        ana, bo = s.person(ANA, size), s.person(BO, size)
        url = f"{s.base}/m/{week0}"
        for page in (ana, bo):
            open_page(page, url)

        # The first screen holds the title, the time, both people and the field to add.
        width, height = SIZES[size]
        for shown in ("h1", ".when time", ".people", "#point-text"):
            box = ana.locator(shown).first.bounding_box()
            assert box is not None and box["y"] + box["height"] <= height, shown

        # Ana adds points (a long one too, to see it wrap): focus stays in the field.
        field = ana.get_by_label("New talking point")
        for text in (POINT, LEFT_OPEN, LONG_POINT):
            field.fill(text)
            field.press("Enter")
            settled(ana)
            expect(field).to_be_focused()
            expect(field).to_have_value("")
        expect(ana.get_by_role("status")).to_have_text("Talking point added.")
        ours = [POINT, LEFT_OPEN, LONG_POINT]
        assert texts(ana)[-3:] == ours

        # She drags the long point above the first of hers.
        long_row = points(ana).filter(has_text="verylongpathsegment")
        long_row.drag_to(points(ana).filter(has_text=POINT), target_position={"x": 40, "y": 2})
        settled(ana)
        assert texts(ana)[-3:] == [LONG_POINT, POINT, LEFT_OPEN]

        # Bo sees the new order, each point with Ana named as its author.
        open_page(bo, url)
        assert texts(bo)[-3:] == [LONG_POINT, POINT, LEFT_OPEN]
        expect(points(bo).filter(has_text=POINT)).to_contain_text(f"added by {ANA}")

        # Bo adds an action item for Ana, and checks off her first point.
        bo.get_by_label("New action item").fill(ITEM)
        bo.get_by_label("Owner").select_option(ANA)
        bo.locator("#action-items form.add").get_by_role("button", name="Add").click()
        settled(bo)
        expect(bo.locator("#action-items li").filter(has_text=ITEM)).to_contain_text("ana:")
        points(bo).filter(has_text=POINT).get_by_role("button", name="Check off").click()
        settled(bo)
        done = points(bo).filter(has_text=POINT)
        expect(done).to_have_class(re.compile(r"\bdone\b"))
        expect(done.get_by_role("button", name="Reopen")).to_be_focused()

        # Ana deletes a template prompt and takes it back; then deletes another for good.
        first_prompt = points(ana).filter(has_text=TEMPLATE[0])
        first_prompt.locator("summary").click()
        first_prompt.get_by_role("button", name="Delete this talking point").click()
        expect(first_prompt).to_be_hidden()
        ana.locator(".undo").get_by_role("button", name="Undo").click()
        expect(first_prompt).to_be_visible()
        second_prompt = points(ana).filter(has_text=TEMPLATE[1])
        second_prompt.locator("summary").click()
        second_prompt.get_by_role("button", name="Delete this talking point").click()
        expect(ana.locator(".undo")).to_be_visible()
        expect(ana.locator(".undo")).to_have_count(0, timeout=10_000)  # the undo time ran out
        expect(ana.get_by_role("status")).to_have_text("Talking point deleted.")  # saved
        expect(second_prompt).to_have_count(0)
        open_page(ana, url)
        assert TEMPLATE[0] in texts(ana) and TEMPLATE[1] not in texts(ana)

        # Ana's private note saves itself, survives a reload, and never reaches Bo.
        private = ana.locator("#private-body")
        private.fill(PRIVATE)
        expect(ana.locator("#private-notes [data-saved]")).to_have_text(re.compile(r"^Saved "))
        open_page(ana, url)
        expect(private).to_have_value(PRIVATE)
        open_page(bo, url)
        expect(bo.locator("#private-body")).to_have_value("")
        assert PRIVATE not in bo.content()

        shoot(ana, "meeting", size)
        no_sideways_scroll(ana)

        # The meeting ends with Ana's second point unchecked: the next one lists it.
        world.now = tuesday(0) + timedelta(minutes=31)
        world.sync()
        open_page(bo, url)
        expect(bo.locator(".state")).to_have_text("Ended")
        bo.get_by_role("link", name=re.compile(r"→$")).click()
        expect(bo.locator(".state")).to_have_text("Next meeting")
        carried = bo.locator("#talking-points li.carried").filter(has_text=LEFT_OPEN)
        expect(carried).to_have_count(1)
        expect(carried).to_contain_text("from 24 Nov 2026")
        bo.evaluate("window.__marker = 1")
        carried.get_by_role("button", name="Check off").click()
        settled(bo)
        expect(carried).to_contain_text("covered here, carried from 24 Nov 2026")
        week1 = invite_token(world, uid, 1)
        assert bo.url.endswith(f"/m/{week1}")

        # Ana's home: her next 1:1 with Bo, and the item Bo gave her.
        ana.goto(f"{s.base}/")
        expect(ana.locator("#upcoming")).to_contain_text("bo")
        expect(ana.locator("#my-items")).to_contain_text(ITEM)
        expect(bo.locator("h1")).to_be_visible()
        shoot(ana, "home", size)
        no_sideways_scroll(ana)

        ana.locator("#upcoming").get_by_role("link", name="all meetings").click()
        expect(ana.locator("h1")).to_contain_text("bo")
        shoot(ana, "pair", size)
        no_sideways_scroll(ana)


@pytest.mark.parametrize("size", list(SIZES))
def test_no_serious_accessibility_violation_on_the_meeting_pair_and_home_pages(
    world: World, size: str
) -> None:
    uid = weekly(world)
    world.settle()
    week0 = invite_token(world, uid, 0)
    world.add_action_item(uid, tuesday(0), ITEM, owner=ANA, author=BO)
    world.add_talking_point(uid, tuesday(0), LONG_POINT, ANA)
    with site(world) as s:
        ana = s.person(ANA, size)
        ana.goto(f"{s.base}/m/{week0}")
        pair = ana.locator(".crumbs a").last.get_attribute("href")
        axe = Axe()
        for path in (f"/m/{week0}", pair, "/"):
            ana.goto(f"{s.base}{path}")
            results = axe.run(ana)
            serious = [
                f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes'][0]['target']}"
                for v in results.response["violations"]
                if v["impact"] in ("serious", "critical")
            ]
            assert serious == [], f"{path} at {size}: {serious}"
        # the menu open, as someone editing sees it
        ana.goto(f"{s.base}/m/{week0}")
        points(ana).first.locator("summary").click()
        results = axe.run(ana)
        assert not [
            v["id"]
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]


def test_keyboard_alone_adds_reorders_and_checks_off_a_point(world: World) -> None:
    uid = weekly(world)
    world.settle()
    week0 = invite_token(world, uid, 0)
    with site(world) as s:
        ana = s.person(ANA, "phone")
        open_page(ana, f"{s.base}/m/{week0}")
        keys = ana.keyboard

        def tab_to(selector: str, limit: int = 60) -> None:
            for _ in range(limit):
                keys.press("Tab")
                if ana.evaluate(f"document.activeElement.matches({selector!r})"):
                    return
            raise AssertionError(f"Tab never reached {selector}")

        tab_to("#point-text")
        keys.type(POINT)
        keys.press("Enter")
        settled(ana)
        assert texts(ana)[-1] == POINT

        # to the new point's menu, open it, and move the point up with its button
        row = points(ana).filter(has_text=POINT)
        tab_to(f'li[data-id="{row.get_attribute("data-id")}"] summary')
        keys.press("Enter")
        tab_to(f'li[data-id="{row.get_attribute("data-id")}"] form.move button')
        keys.press("Enter")
        settled(ana)
        assert texts(ana)[-2:] == [POINT, TEMPLATE[1]]

        # Alt+Up from anywhere in its line moves it once more
        row = points(ana).filter(has_text=POINT)
        row.get_by_role("button", name="Check off").focus()
        keys.press("Alt+ArrowUp")
        settled(ana)
        assert texts(ana)[0] == POINT

        # Space on its check box checks it off; focus stays on that control
        row = points(ana).filter(has_text=POINT)
        expect(row.get_by_role("button", name="Check off")).to_be_focused()
        keys.press("Space")
        settled(ana)
        expect(points(ana).filter(has_text=POINT)).to_have_class(re.compile(r"\bdone\b"))
        expect(
            points(ana).filter(has_text=POINT).get_by_role("button", name="Reopen")
        ).to_be_focused()


def test_an_edit_made_while_a_delete_can_still_be_undone_does_not_bring_it_back(
    world: World,
) -> None:
    """The other edit's answer redraws the list: the delete must reach the server first."""
    uid = weekly(world)
    world.settle()
    week0 = invite_token(world, uid, 0)
    with site(world) as s:
        ana = s.person(ANA)
        open_page(ana, f"{s.base}/m/{week0}")
        doomed = points(ana).filter(has_text=TEMPLATE[0])
        doomed.locator("summary").click()
        doomed.get_by_role("button", name="Delete this talking point").click()
        expect(ana.locator(".undo")).to_be_visible()
        # within the undo time, Ana checks off the other prompt
        points(ana).filter(has_text=TEMPLATE[1]).get_by_role("button", name="Check off").click()
        settled(ana)
        expect(points(ana).filter(has_text=TEMPLATE[1])).to_have_class(re.compile(r"\bdone\b"))
        expect(ana.locator(".undo")).to_have_count(0)  # the delete went first, for good
        assert TEMPLATE[0] not in texts(ana)
        open_page(ana, f"{s.base}/m/{week0}")
        assert TEMPLATE[0] not in texts(ana) and TEMPLATE[1] in texts(ana)


def test_without_javascript_the_plain_forms_still_work(world: World) -> None:
    """The page works with no script at all; each form posts and comes back."""
    uid = weekly(world)
    world.settle()
    week0 = invite_token(world, uid, 0)
    with site(world) as s:
        page = s.person(ANA, script=False)
        page.goto(f"{s.base}/m/{week0}")
        expect(page.get_by_role("status")).to_have_count(0)  # app.js did not run
        page.get_by_label("New talking point").fill(POINT)
        with page.expect_navigation(wait_until="load"):
            page.locator("#talking-points form.add").get_by_role("button", name="Add").click()
        assert page.url.endswith(f"/m/{week0}#talking-points")
        point = points(page).filter(has_text=POINT)
        expect(point).to_contain_text(f"added by {ANA}")

        with page.expect_navigation(wait_until="load"):
            point.get_by_role("button", name="Check off").click()
        expect(points(page).filter(has_text=POINT)).to_have_class(re.compile(r"\bdone\b"))

        # a delete asks first; "Keep it" keeps it, "Delete it" deletes it
        for choice, kept in (("Keep it", True), ("Delete it", False)):
            point = points(page).filter(has_text=POINT)
            point.locator("summary").click()
            with page.expect_navigation(wait_until="load"):
                point.get_by_role("button", name="Delete this talking point").click()
            expect(page.locator("h1")).to_have_text("Delete this talking point?")
            with page.expect_navigation(wait_until="load"):
                page.get_by_role("link" if kept else "button", name=choice).click()
            assert (POINT in texts(page)) is kept


def test_a_talking_point_is_edited_in_place_and_stays_edited(world: World) -> None:
    """The menu's editor: the caret lands in the text, Enter saves without a reload."""
    uid = weekly(world)
    world.settle()
    week0 = invite_token(world, uid, 0)
    before, after = TEMPLATE[0], "What is top of mind this quarter?"
    with site(world) as s:
        page = s.person(ANA)
        open_page(page, f"{s.base}/m/{week0}")
        point = points(page).filter(has=page.locator(".text", has_text=before))
        point.locator("summary").click()
        field = point.get_by_label("Talking point")
        expect(field).to_be_focused()
        field.fill(after)
        field.press("Enter")
        settled(page)

        edited = points(page).filter(has=page.locator(".text", has_text=after))
        expect(edited).to_have_count(1)
        expect(edited).to_contain_text("from the template")  # who raised it stays
        expect(edited.locator("summary")).to_be_focused()
        expect(page.get_by_role("status")).to_have_text(f"Talking point saved: {after}.")
        page.reload()
        assert after in texts(page) and before not in texts(page)
