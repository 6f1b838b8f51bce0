"""Two installations on one organization, and one installation that lost its database.

Each installation is syncd's engine with its own database and its own
identity (as ``syncd run`` derives it from its key), talking to the Google
or the Graph emulator through the real client libraries. What a person
would notice is asserted from the emulator's side (the invites, every PATCH
sent) and from the agenda API (what a link opens).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.oauth2 import service_account
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from providers.emulators.google import GoogleEmulator
from providers.emulators.graph import GraphEmulator
from providers.google.calendar import GoogleProvider
from providers.google.grant import SCOPES as GOOGLE_SCOPES
from providers.model import Window
from syncd import agenda, installation
from syncd.engine import CalendarSync, Policy, Report
from syncd.store import connect, migrate, sessions, transaction
from syncd.store.models import Meeting, Occurrence
from syncd.web.app import create_app
from tests.e2e.org import ANA, BO, PEOPLE, policy, seed_world
from tests.e2e.test_microsoft_tenant import graph_provider

OTHER = "other-installation"
LINK = re.compile(r"/m/([A-Za-z0-9_-]+)")


def identity_from(key: bytes) -> str:
    return installation.identity(key, "https://agenda.example.org")


@dataclass
class Installation:
    """One syncd: its engine, its database, its identity; all on one shared emulator."""

    syncer: CalendarSync
    engine: Engine

    def sync_all(self, now: datetime) -> Report:
        total = Report()
        for person in PEOPLE:
            total.merge(self.syncer.sync(person, now))
        return total

    def view(self, token: str, now: datetime) -> dict[str, Any] | None:
        """What the link opens (link sign-in: the token alone), or None for a 404."""
        client = TestClient(create_app(sessions(self.engine), clock=lambda: now))
        answer = client.get(f"/api/v1/meetings/{token}")
        if answer.status_code == 404:
            return None
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()
        return data


@dataclass
class System:
    name: str
    emulator: Any
    provider_for: Any  # () -> a new provider on the emulator
    tmp: Path

    def install(self, key: bytes, database: str) -> Installation:
        engine = connect(f"sqlite:///{self.tmp / database}")
        migrate(engine)
        base = policy()
        chosen = Policy(
            base_url=base.base_url,
            zone=base.zone,
            rules=base.rules,
            template=base.template,
            installation=identity_from(key),
        )
        syncer = CalendarSync(
            self.provider_for(), sessions(engine), chosen, account="org", sleep=lambda s: None
        )
        return Installation(syncer, engine)

    def patches(self) -> int:
        return sum(1 for r in self.emulator.requests if r.method == "PATCH")

    def invite_tokens(self, installed: Installation, now: datetime) -> set[str]:
        """The agenda token of every organizer copy's block, read through the provider."""
        window = Window(now - timedelta(days=2), now + timedelta(days=28))
        found = set()
        provider = installed.syncer.provider
        for person in PEOPLE:
            for page in provider.changes(person, None, window):
                for event in page.events:
                    match = LINK.search(event.description)
                    if event.is_organizer_copy and match:
                        found.add(match[1])
        return found


@pytest.fixture(params=["google", "microsoft"])
def system(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[System]:
    if request.param == "google":
        with GoogleEmulator(PEOPLE, page_size=20) as emulator:
            delegating = service_account.Credentials.from_service_account_info(
                emulator.service_account_info(), scopes=list(GOOGLE_SCOPES)
            )

            def google() -> GoogleProvider:
                return GoogleProvider(
                    PEOPLE, lambda p: delegating.with_subject(p), api_root=emulator.api_root
                )

            yield System("google", emulator, google, tmp_path)
        return
    with GraphEmulator(PEOPLE) as emulator:
        yield System("microsoft", emulator, lambda: graph_provider(emulator, PEOPLE), tmp_path)


def now_of() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def test_two_installations_settle_and_never_write_each_others_occurrences(system: System) -> None:
    now = now_of()
    first = system.install(b"key-of-the-first-installation", "first.db")
    second = system.install(b"key-of-the-second-installation", "second.db")
    seed_world(system.emulator, now)

    assert first.sync_all(now).errors == []
    written_by_first = system.patches()
    assert written_by_first > 0

    report = second.sync_all(now)
    assert report.errors == []
    assert system.patches() == written_by_first  # not one write to the first's occurrences
    assert report.skipped[OTHER] > 0
    with transaction(sessions(second.engine)) as session:
        verdicts = session.scalars(
            select(Occurrence.verdict).where(Occurrence.organizer_copy.is_(True))
        ).all()
    assert OTHER in verdicts

    # A 1:1 that the second installation sees first is the second's; the first leaves it.
    start = now + timedelta(days=3)
    later = system.emulator.create_event(
        BO, [BO, ANA], "Bo / Ana extra", start, start + timedelta(minutes=30)
    )
    assert second.sync_all(now).errors == []
    taken = system.patches()
    assert taken == written_by_first + 1
    again = first.sync_all(now)
    assert again.errors == [] and again.skipped[OTHER] >= 1
    assert system.patches() == taken

    # Settled: further passes of both write nothing, and each link opens at its owner only.
    assert first.sync_all(now).writes == 0 and second.sync_all(now).writes == 0
    assert system.patches() == taken
    body = system.emulator.description(BO, system.emulator.copy_id(BO, later))
    token = LINK.search(body)
    assert token is not None
    assert second.view(token[1], now) is not None and first.view(token[1], now) is None


def content(view: dict[str, Any]) -> dict[str, Any]:
    """What a person sees in an agenda that an invite can carry: open points and items."""
    return {
        "title": view["meeting"]["title"],
        "people": view["people"],
        "points": [(p["text"], p["author"]) for p in view["talking_points"] if not p["done"]],
        "items": [(i["text"], i["owner"]) for i in view["action_items"] if not i["done"]],
        "carried": [
            (i["text"], i["owner"], i["origin"]["start"][:10])
            for i in view["carried_action_items"]
            if not i["done"]
        ],
        "carried points": [
            (p["text"], p["author"], p["carried_from"][:10])
            for p in view["carried_talking_points"]
            if not p["done"]
        ],
    }


def test_a_lost_database_is_rebuilt_from_the_invites_with_every_link_kept(
    system: System,
) -> None:
    now = now_of()
    key = b"the-key-the-admin-kept"
    original = system.install(key, "syncd.db")
    events = seed_world(system.emulator, now)
    assert original.sync_all(now).errors == []

    # People use their agendas: an action item in the first weekly 1:1, points in the next.
    _, weekly_start = events["weekly"]
    factory = sessions(original.engine)
    with transaction(factory) as session:
        pair, _ = agenda.pair_for(session, (ANA, BO), now)
        first, second = session.scalars(
            select(Meeting).where(Meeting.pair_id == pair.id).order_by(Meeting.start).limit(2)
        ).all()
        assert first.start == weekly_start
        add_item = agenda.add_action_item
        add_item(session, first, "draft the mentoring plan", owner=BO, author=ANA, now=now)
        add_item(session, first, "book the offsite (Q3)", owner=ANA, author=BO, now=now)
        agenda.add_talking_point(session, first, "Conference budget", BO, now)
        agenda.add_talking_point(session, second, "Hiring plan", BO, now)
        agenda.add_talking_point(session, second, "Feedback on the demo (draft)", ANA, now)
    # The first weekly meeting ends: its items are carried into the next invites.
    later = weekly_start + timedelta(hours=2)
    assert original.sync_all(later).errors == []
    tokens = system.invite_tokens(original, later)
    before = {token: original.view(token, later) for token in tokens}
    assert all(before.values())
    carried = [c for view in before.values() for c in content(view)["carried"]]  # type: ignore[arg-type]
    assert ("draft the mentoring plan", BO, weekly_start.date().isoformat()) in carried
    points = [p for view in before.values() for p in content(view)["carried points"]]  # type: ignore[arg-type]
    assert points == [("Conference budget", BO, weekly_start.date().isoformat())]
    written = system.patches()

    # The database is lost; the key is kept. A new database, the same installation.
    original.engine.dispose()
    (system.tmp / "syncd.db").unlink()
    rebuilt = system.install(key, "syncd.db")
    report = rebuilt.sync_all(later)

    assert report.errors == []
    assert system.patches() == written  # no invite got a new link (or any other change)
    assert system.invite_tokens(rebuilt, later) == tokens
    for token, was in before.items():
        now_seen = rebuilt.view(token, later)
        assert now_seen is not None, f"{token} no longer opens"
        assert content(now_seen) == content(was)  # type: ignore[arg-type]
    assert rebuilt.sync_all(later).writes == 0
    assert system.patches() == written
