"""The demo's organization and what it prints, synced the way the daemon syncs it.

The emulators run for real (loopback); each calendar is synced by the same
``CalendarSync`` the runtime uses and its report handed to ``Narration`` as
the runtime's ``on_sync`` would, so the order and the moment of each sync
are the test's. ``tests/e2e/test_demo.py`` runs the whole of ``make demo``.
"""

from __future__ import annotations

import contextlib
import io
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from providers.emulators import demo_org
from syncd import agenda, assemble, config, demo
from syncd.cli import main
from syncd.engine import CalendarSync, Report
from syncd.store import sessions, transaction
from syncd.store.models import Calendar, Meeting, Occurrence

ANA, BO, GUS = demo_org.address("ana"), demo_org.address("bo"), demo_org.address("gus")


@dataclass
class Run:
    settings: config.Settings
    factory: sessionmaker[Session]
    syncers: dict[str, CalendarSync]
    progress: demo.Narration
    out: io.StringIO
    now: datetime

    def sync(self, account: str, calendar: str) -> Report:
        report = self.syncers[account].sync(calendar, self.now)
        self.progress(account, calendar, report)
        return report

    def sync_all(self) -> Report:
        total = Report()
        for account in self.settings.accounts:
            for calendar in account.calendars:
                total.merge(self.sync(account.name, calendar))
        return total


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    now = datetime.now(UTC)
    with demo.organization(now) as world:
        google, graph = world
        settings = config.load(demo.prepare(tmp_path, world, "127.0.0.1:8080"))
        factory = sessions(assemble.store(settings))
        policy = assemble.policy(settings)
        stack = contextlib.ExitStack()
        syncers = {
            name: CalendarSync(
                stack.enter_context(assemble.connected(settings.account(name), settings)).provider,
                factory,
                policy,
                account=name,
            )
            for name in (demo_org.GOOGLE_ACCOUNT, demo_org.MICROSOFT_ACCOUNT)
        }
        out = io.StringIO()
        progress = demo.Narration(
            settings,
            {demo_org.GOOGLE_ACCOUNT: google, demo_org.MICROSOFT_ACCOUNT: graph},
            out,
            clock=lambda: now,
        )
        yield Run(settings, factory, syncers, progress, out, now)
        progress.close()
        stack.close()


def pairs_linked(text: str) -> set[str]:
    return {line.split("UTC", 1)[1].split("http", 1)[0].strip() for line in text.splitlines()
            if "/m/" in line and "UTC" in line and "Agenda:" not in line}  # fmt: skip


def test_the_first_pass_ends_in_the_links_of_every_pair_and_nothing_else(run: Run) -> None:
    calendars = [(a.name, c) for a in run.settings.accounts for c in a.calendars]
    assert len(calendars) == 8
    for account, calendar in calendars[:-1]:
        run.sync(account, calendar)
    assert "first sync complete" not in run.out.getvalue()
    run.sync(*calendars[-1])

    text = run.out.getvalue()
    assert "first sync complete: 8 calendars" in text and ", 0 errors" in text
    assert pairs_linked(text) == {"ana + bo", "ana + cy", "dee + eli", "gus + hal", "ana + gus"}
    _, ended = text.split("just ended", 1)
    assert pairs_linked(ended.split("now reads", 1)[0]) == {"ana + bo"}
    assert "synced gus@example.org (microsoft): " in text

    with transaction(run.factory) as session:
        verdicts = {
            (row.title, row.verdict)
            for row in session.scalars(select(Occurrence).where(Occurrence.is_master.is_(False)))
        }
        titles = {m.title for m in session.scalars(select(Meeting))}
    assert ("Team sync", "more-than-two-people") in verdicts
    assert ("Out of office", "out-of-office") in verdicts
    assert ("Board room hold", "fewer-than-two-people") in verdicts
    assert ("Quarterly planning prep", "fewer-than-two-people") in verdicts
    assert not titles & {"Team sync", "Out of office", "Board room hold", "Quarterly planning prep"}

    assert run.sync_all().writes == 0  # settled: the second pass writes nothing


def test_the_pair_split_across_google_and_outlook_shares_each_agenda(run: Run) -> None:
    run.sync_all()
    with transaction(run.factory) as session:
        ids = {
            row.address: row.id
            for row in session.scalars(select(Calendar).where(Calendar.address.in_([ANA, GUS])))
        }

        def agendas_seen_by(calendar: str) -> set[int]:
            rows = session.scalars(
                select(Occurrence).where(
                    Occurrence.calendar_id == ids[calendar],
                    Occurrence.title == "Ana / Gus 1:1",
                    Occurrence.is_master.is_(False),
                )
            ).all()
            found = {agenda.find_meeting(session, row.key) for row in rows}
            return {meeting.id for meeting in found if meeting is not None}

        in_google, in_outlook = agendas_seen_by(ANA), agendas_seen_by(GUS)
    assert len(in_google) >= 2 and in_google == in_outlook


def test_an_action_item_on_the_meeting_that_just_ended_is_shown_in_the_next_invite(
    run: Run,
) -> None:
    run.sync_all()
    before = len(run.out.getvalue())
    with transaction(run.factory) as session:
        ended = session.scalars(select(Meeting).where(Meeting.end <= run.now)).one()
        agenda.add_action_item(
            session, ended, "draft the mentoring plan", owner=BO, author=ANA, now=run.now
        )

    run.sync(demo_org.GOOGLE_ACCOUNT, ANA)  # Ana organizes the weekly: her copies are written

    shown = run.out.getvalue()[before:]
    assert "the invite of 'Ana / Bo 1:1'" in shown and f"in {ANA} now reads:" in shown
    assert "☐ Bo Berg: draft the mentoring plan" in shown  # named as the invites name him


def test_prepare_starts_fresh_and_keeps_the_credentials_private(tmp_path: Path) -> None:
    (tmp_path / "syncd.db").write_text("an earlier run's database")
    with demo.organization(datetime.now(UTC)) as world:
        path = demo.prepare(tmp_path, world, "127.0.0.1:8123")
        settings = config.load(path)
    assert not (tmp_path / "syncd.db").exists()
    assert settings.syncd.base_url == "http://127.0.0.1:8123"
    assert settings.web.sign_in is config.SignIn.LINK and not settings.web.secure_cookies
    for name in (demo_org.SERVICE_ACCOUNT_FILE, demo_org.CLIENT_SECRET_FILE):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_a_bad_listen_address_is_one_line_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--dir", str(tmp_path), "--listen", "nowhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "web.listen" in err
