"""A small organization, synced once, and browsers that talk to the web app."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from syncd.store.models import Meeting
from syncd.web.app import create_app
from syncd.web.settings import WebSettings
from tests.unit.world import World, tuesday, weekly

ADMIN = "it@example.org"
# TestClient's TCP peer is "testclient": trusting it stands for "behind the proxy".
BEHIND_PROXY = WebSettings(sign_in="proxy-header", trusted_proxies=("testclient",), admins=(ADMIN,))
_CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


class Org(World):
    uid: str

    def tokens(self, week: int = 0) -> tuple[str, str]:
        """(meeting token, pair token) of the weekly 1:1 in ``week``."""
        with self.session() as session:
            meeting = session.scalars(
                select(Meeting).where(
                    Meeting.ical_uid == self.uid, Meeting.original_start == tuesday(week)
                )
            ).one()
            return meeting.token, meeting.pair.token

    def app(self, settings: WebSettings = BEHIND_PROXY) -> Any:
        return create_app(self.factory, clock=lambda: self.now, web=settings)


class Browser:
    """One person's browser: their cookies, and their identity set by the proxy."""

    def __init__(self, app: Any, who: str | None = None, header: str = "X-Forwarded-Email"):
        headers = {header: who} if who else {}
        self.client = TestClient(app, base_url="https://testserver", headers=headers)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)

    def csrf(self, page: str) -> str:
        """Open ``page`` and read the form token, as a browser would submit it."""
        found = _CSRF_FIELD.search(self.get(page).text)
        assert found, "the page has no form"
        return found.group(1)

    def post(self, path: str, data: dict[str, str], *, page: str | None = None) -> httpx.Response:
        """Submit a form found on ``page`` (default: the meeting page the path belongs to)."""
        token = self.csrf(page or "/".join(path.split("/")[:3]))
        return self.client.post(path, data={**data, "csrf": token}, follow_redirects=False)

    def api(self, method: str, path: str, body: Any = None, *, csrf: bool = True) -> httpx.Response:
        headers = {}
        if csrf:
            meeting = "/".join(path.split("/")[:5])
            headers["X-CSRF-Token"] = self.client.get(meeting).headers.get("X-CSRF-Token", "")
        return self.client.request(method, path, json=body, headers=headers)


@pytest.fixture
def org(db_engine: Engine) -> Org:
    world = Org(db_engine)
    world.uid = weekly(world)  # Ana organizes, Bo attends
    world.settle()
    return world
