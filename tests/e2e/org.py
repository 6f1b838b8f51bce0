"""A five-person organization on either emulator: the people, what they schedule, how syncd runs.

Both end-to-end suites (Google, Microsoft) drive the same organization through
the same steps; only the calendar system and its provider differ.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from providers.memory import Recurrence
from syncd import agenda, block, detect, push
from syncd.engine import CalendarSync, Policy, Report
from syncd.scheduler import tick
from syncd.store import sessions, transaction
from syncd.store.models import Calendar, Meeting

ANA, BO, CY, DEE, EVE = (f"{n}@example.org" for n in ("ana", "bo", "cy", "dee", "eve"))
PEOPLE = (ANA, BO, CY, DEE, EVE)


def policy() -> Policy:
    return Policy(
        base_url="https://agenda.example.org",
        zone=UTC,
        rules=detect.Rules(org_domains=("example.org",)),
        template=("What is top of mind?",),
    )


@dataclass
class Org:
    """One emulator (GoogleEmulator or GraphEmulator), syncd's syncer for it, and a clock."""

    emulator: Any
    syncer: CalendarSync
    now: datetime
    webhook: str = ""

    @property
    def factory(self) -> sessionmaker[Session]:
        return self.syncer.factory

    def sync_all(self) -> Report:
        total = Report()
        for person in PEOPLE:
            total.merge(self.syncer.sync(person, self.now))
        return total

    def tick(self) -> Report:
        return tick(self.factory, {self.syncer.account: self.syncer}, self.now)

    def block_of(self, calendar: str, uid: str, start: datetime | None = None) -> str | None:
        copy = self.emulator.copy_id(calendar, uid, start)
        return block.extract(self.emulator.description(calendar, copy))

    def patches(self) -> list[str]:
        """The event ids of every PATCH sent, in order."""
        return [r.path.rsplit("/", 1)[-1] for r in self.emulator.requests if r.method == "PATCH"]

    def add_point(self, uid: str, start: datetime, text: str, author: str) -> None:
        """A talking point added on the agenda page, its pair's calendars marked due."""
        with transaction(self.factory) as session:
            meeting = session.scalars(
                select(Meeting).where(Meeting.ical_uid == uid, Meeting.original_start == start)
            ).one()
            agenda.add_talking_point(session, meeting, text, author, self.now)
            push.mark_pair_due(session, meeting.pair_id, self.now)

    def calls_since(self, count: int) -> list[str]:
        """The API operations (token requests aside) received after the first ``count``."""
        sign_in = {"token", "discovery", "devicecode", "authorize", "auth", "certs"}
        return [r.op for r in self.emulator.requests[count:] if r.op and r.op not in sign_in]

    def wait_marked(self, *addresses: str, timeout: float = 5.0) -> None:
        """Graph's notifications are judged after the 202: wait until they were."""
        deadline = time.monotonic() + timeout
        while True:
            with transaction(self.factory) as session:
                marked = {
                    row.address
                    for row in session.scalars(select(Calendar))
                    if row.next_sync_at is not None
                }
            if set(addresses) <= marked:
                return
            if time.monotonic() >= deadline:
                raise AssertionError(f"not marked due: {set(addresses) - marked}")
            time.sleep(0.02)


@contextmanager
def google_org(
    engine: Engine,
    now: datetime,
    *,
    page_size: int = 20,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Org]:
    """The five people on the Google emulator, syncd acting for each by domain-wide delegation."""
    from google.oauth2 import service_account

    from providers.emulators.google import GoogleEmulator
    from providers.google.calendar import GoogleProvider
    from providers.google.grant import SCOPES as GOOGLE_SCOPES

    with GoogleEmulator(PEOPLE, page_size=page_size) as emulator:
        delegating = service_account.Credentials.from_service_account_info(
            emulator.service_account_info(), scopes=list(GOOGLE_SCOPES)
        )
        provider = GoogleProvider(
            PEOPLE, lambda person: delegating.with_subject(person), api_root=emulator.api_root
        )
        syncer = CalendarSync(provider, sessions(engine), policy(), account="acme", sleep=sleep)
        yield Org(emulator, syncer, now)


def seed(org: Org) -> dict[str, tuple[str, datetime]]:
    """A weekly and a biweekly 1:1, an ad-hoc one, and a team meeting; by name: (uid, start)."""
    return seed_world(org.emulator, org.now)


def seed_world(e: Any, now: datetime) -> dict[str, tuple[str, datetime]]:
    """``seed`` on any emulator (or memory provider), placed relative to ``now``."""
    start = now + timedelta(days=1, hours=1)
    weekly = e.create_event(
        ANA, [ANA, BO], "Ana / Bo", start, start + timedelta(minutes=30),
        description="<p>Standing notes</p>", html=True, recurrence=Recurrence(7),
    )  # fmt: skip
    biweekly = e.create_event(
        CY, [CY, DEE], "Cy / Dee", start + timedelta(hours=2), start + timedelta(hours=3),
        recurrence=Recurrence(14),
    )  # fmt: skip
    adhoc_start = start + timedelta(days=2)
    adhoc = e.create_event(
        EVE, [EVE, ANA], "quick chat", adhoc_start, adhoc_start + timedelta(minutes=15)
    )
    team = e.create_event(ANA, list(PEOPLE), "Team", start, start + timedelta(hours=1))
    return {
        "weekly": (weekly, start),
        "biweekly": (biweekly, start + timedelta(hours=2)),
        "adhoc": (adhoc, adhoc_start),
        "team": (team, start),
    }
