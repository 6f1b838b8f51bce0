"""A small organization on the memory provider, a store, and a controllable clock.

Scenario tests drive it like time passing in the real world: people create
and edit events, the clock moves, syncd syncs.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from providers.memory import MemoryProvider
from providers.model import SINGLE_EVENT
from syncd import agenda, block, detect, push
from syncd.engine import CalendarSync, Policy, Report
from syncd.store import sessions, transaction
from syncd.store.models import Meeting

ANA = "ana@example.org"
BO = "bo@example.org"
CY = "cy@example.org"
ROOM = "room-4@resource.calendar.google.com"
PEOPLE = (ANA, BO, CY)
# Monday 23 November 2026, 08:00 UTC: every scenario starts here.
MONDAY = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TEMPLATE = ("What is top of mind?", "Feedback both ways?")


class World:
    def __init__(
        self, engine: Engine, provider: MemoryProvider | None = None, **policy: Any
    ) -> None:
        self.provider = provider or MemoryProvider(PEOPLE, page_size=7)
        self.factory = sessions(engine)
        self.policy = Policy(
            base_url="https://agenda.example.org",
            zone=UTC,
            rules=detect.Rules(org_domains=("example.org",)),
            template=TEMPLATE,
            **policy,
        )
        self.sleeps: list[float] = []
        self.now = MONDAY
        self.syncer = self._syncer()

    def _syncer(self) -> CalendarSync:
        return CalendarSync(
            self.provider, self.factory, self.policy, account="acme", sleep=self.sleeps.append
        )

    def restart(self, **policy: Any) -> None:
        """A new process on the same store and calendars."""
        self.policy = replace(self.policy, **policy)
        self.syncer = self._syncer()

    def sync(self) -> Report:
        total = Report()
        for address in self.provider.calendars():
            total.merge(self.syncer.sync(address, self.now))
        return total

    def settle(self, rounds: int = 4) -> Report:
        """Sync until a pass makes no write (our own writes come back as changes)."""
        total = Report()
        for _ in range(rounds):
            report = self.sync()
            total.merge(report)
            if report.writes == 0:
                return total
        raise AssertionError("syncd did not settle: it keeps writing")

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    # -- reading what people see ---------------------------------------------

    def body(self, calendar: str, uid: str, original_start: datetime | None = None) -> str:
        return self.provider.description(
            calendar, self.provider.copy_id(calendar, uid, original_start)
        )

    def block_in(
        self, calendar: str, uid: str, original_start: datetime | None = None
    ) -> str | None:
        return block.extract(self.body(calendar, uid, original_start))

    def meeting(self, uid: str, original_start: datetime | None = None) -> Meeting:
        """The agenda of an occurrence, or of a single event when no start is given."""
        original_start = original_start or SINGLE_EVENT
        with self.session() as session:
            return session.scalars(
                select(Meeting).where(
                    Meeting.ical_uid == uid, Meeting.original_start == original_start
                )
            ).one()

    def add_action_item(
        self, uid: str, original_start: datetime, text: str, *, owner: str, author: str
    ) -> int:
        """What a person does on the agenda page; returns the item's id."""
        with self.session() as session:
            meeting = self._edited(session, uid, original_start)
            item = agenda.add_action_item(
                session, meeting, text, owner=owner, author=author, now=self.now
            )
            return item.id

    def add_talking_point(self, uid: str, original_start: datetime, text: str, author: str) -> None:
        """What a person does on the agenda page."""
        with self.session() as session:
            meeting = self._edited(session, uid, original_start)
            agenda.add_talking_point(session, meeting, text, author, self.now)

    def _edited(self, session: Session, uid: str, original_start: datetime) -> Meeting:
        """The meeting an edit is about, its pair's calendars marked due as the page does."""
        meeting = session.scalars(
            select(Meeting).where(Meeting.ical_uid == uid, Meeting.original_start == original_start)
        ).one()
        push.mark_pair_due(session, meeting.pair_id, self.now)
        return meeting

    def session(self) -> Any:
        return transaction(self.factory)


def weekly(world: World, *people: str, title: str = "Ana / Bo 1:1", **kw: Any) -> str:
    from providers.memory import Recurrence

    organizer, *attendees = people or (ANA, BO)
    first = MONDAY + timedelta(days=1, hours=2)  # Tuesday 10:00
    return world.provider.create_event(
        organizer,
        [organizer, *attendees],
        title,
        first,
        first + timedelta(minutes=30),
        recurrence=Recurrence(interval_days=7),
        **kw,
    )


def tuesday(week: int) -> datetime:
    """Start of the weekly 1:1 in week ``week`` (0 = the first)."""
    return MONDAY + timedelta(days=1 + 7 * week, hours=2)


def session_of(world: World) -> Session:
    return world.factory()
