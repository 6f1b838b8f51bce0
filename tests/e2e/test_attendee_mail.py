"""Nobody is mailed by surprise: a week of agenda edits, and what lands in the attendee's inbox.

Exchange mails every attendee a meeting update whenever the organizer's copy
of a meeting changes; Google does when ``sendUpdates`` asks for it. Both
emulators record those mails (``emulator.mails``). One pair, Ana (who
organizes the weekly series) and Bo, uses its agendas the way people do:
talking points added every few hours, an action item agreed in the meeting.
What is asserted is what Bo would find in his inbox, what the invites show
and when, and, on Google's default (``sendUpdates=none``), that nothing is
mailed while every edit still reaches the invite.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.oauth2 import service_account
from sqlalchemy import Engine, select

from providers.emulators.google import GoogleEmulator
from providers.emulators.graph import GraphEmulator
from providers.google.calendar import GoogleProvider
from providers.google.grant import SCOPES as GOOGLE_SCOPES
from providers.memory import Recurrence
from syncd import agenda, block, budget, push
from syncd.engine import CalendarSync, Report
from syncd.store import sessions, transaction
from syncd.store.models import Meeting, TalkingPoint
from tests.e2e.org import ANA, BO, policy
from tests.e2e.test_microsoft_tenant import graph_provider

PEOPLE = (ANA, BO)
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)


@dataclass
class Pair:
    emulator: Any
    syncer: CalendarSync
    uid: str
    first: datetime  # the series' first start
    now: datetime

    def sync(self) -> Report:
        total = Report()
        for person in PEOPLE:
            total.merge(self.syncer.sync(person, self.now))
        assert total.errors == []
        return total

    def meeting(self, start: datetime) -> Meeting:
        with transaction(self.syncer.factory) as session:
            found = session.scalars(select(Meeting).where(Meeting.start == start)).one()
            session.expunge(found)
            return found

    def edit(self, start: datetime, text: str, author: str, *, item: bool = False) -> None:
        """What the agenda page does: the edit, and the pair's calendars marked due."""
        with transaction(self.syncer.factory) as session:
            meeting = session.scalars(select(Meeting).where(Meeting.start == start)).one()
            if item:
                agenda.add_action_item(
                    session, meeting, text, owner=BO, author=author, now=self.now
                )
            else:
                agenda.add_talking_point(session, meeting, text, author, self.now)
            push.mark_pair_due(session, meeting.pair_id, self.now)

    def invite(self, start: datetime) -> str:
        """The block in Bo's copy: what the attendee reads in his calendar."""
        copy = self.emulator.copy_id(BO, self.uid, start)
        return block.extract(self.emulator.description(BO, copy)) or ""

    def mails_to(self, person: str) -> Counter[datetime | None]:
        """Meeting updates in ``person``'s inbox, per occurrence (by original start)."""
        return Counter(m.occurrence for m in self.emulator.mails if m.recipient == person)


def _google(send_updates: str) -> Any:
    def build(emulator: GoogleEmulator) -> GoogleProvider:
        delegating = service_account.Credentials.from_service_account_info(
            emulator.service_account_info(), scopes=list(GOOGLE_SCOPES)
        )
        return GoogleProvider(
            PEOPLE,
            lambda person: delegating.with_subject(person),
            api_root=emulator.api_root,
            send_updates=send_updates,
        )

    return build


SYSTEMS = {
    "outlook": (GraphEmulator, lambda emulator: graph_provider(emulator, PEOPLE)),
    "google-send-updates-all": (GoogleEmulator, _google("all")),
    "google-default": (GoogleEmulator, _google("none")),
}


@pytest.fixture(params=list(SYSTEMS))
def pair(request: pytest.FixtureRequest, db_engine: Engine) -> Iterator[Pair]:
    emulator_class, provider_for = SYSTEMS[request.param]
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = now + timedelta(days=1, hours=10)
    with emulator_class(PEOPLE) as emulator:
        uid = emulator.create_event(
            ANA, [ANA, BO], "Ana / Bo", first, first + timedelta(minutes=30),
            recurrence=Recurrence(7),
        )  # fmt: skip
        provider = provider_for(emulator)
        syncer = CalendarSync(
            provider, sessions(db_engine), policy(), account="org", sleep=lambda s: None
        )
        yield Pair(emulator, syncer, uid, first, now)
        if hasattr(provider, "close"):
            provider.close()


def live_a_week(pair: Pair) -> list[tuple[datetime, str]]:
    """Hourly syncs from now to the end of the second meeting; points every three hours.

    Returns every talking point added to the second meeting: when, and its text.
    """
    first, second = pair.first, pair.first + WEEK
    second_points: list[tuple[datetime, str]] = []
    step = 0
    while pair.now < second + HOUR:
        pair.now += HOUR
        step += 1
        upcoming = first if pair.now < first else second
        if step % 3 == 0 and pair.now <= upcoming - HOUR:  # up to an hour before
            text = f"point {step} for {upcoming:%d %b}"
            pair.edit(upcoming, text, ANA if step % 2 else BO)
            if upcoming == second:
                second_points.append((pair.now, text))
        if pair.now == first + HOUR:  # agreed in the first meeting, written just after it
            pair.edit(first, "send Bo the hiring plan", ANA, item=True)
        pair.sync()
    return second_points


@pytest.mark.parametrize("pair", ["outlook", "google-send-updates-all"], indirect=True)
def test_where_writes_are_mailed_an_occurrence_costs_at_most_three_mails_not_one_per_edit(
    pair: Pair,
) -> None:
    first, second = pair.first, pair.first + WEEK
    assert pair.sync().writes == 2  # the first two occurrences get their link
    assert pair.mails_to(BO) == {first: 1, second: 1}
    assert "https://agenda.example.org/m/" in pair.invite(first)

    second_points = live_a_week(pair)

    # Bo's inbox: a handful of syncd mails per meeting, not one per point or item.
    edits = len(second_points)
    assert edits >= 40
    inbox = pair.mails_to(BO)
    assert inbox[first] == 2  # its link, then the current points just before it
    assert inbox[second] == 3  # its link, the carried action item, the pre-meeting refresh
    assert all(count <= budget.MAX_MAILS for count in inbox.values())
    assert pair.mails_to(ANA) == {}  # the organizer is never mailed about her own meeting

    # What those few mails carried: the carry-over, and every point of the refresh.
    invite = pair.invite(second)
    assert "☐ bo: send Bo the hiring plan" in invite
    refreshed_at = second - pair.syncer.policy.mail_budget.lead
    in_refresh = [text for at, text in second_points if at <= refreshed_at]
    shown = [line for line in invite.splitlines() if line.startswith("• ")]
    more = re.search(r"… and (\d+) more", invite)
    # the first meeting's points, never checked off, are carried into the second, listed first
    with transaction(pair.syncer.factory) as session:
        carried = session.scalars(
            select(TalkingPoint.text)
            .join(Meeting, TalkingPoint.meeting_id == Meeting.id)
            .where(Meeting.start == first, TalkingPoint.author != "")
        ).all()
    assert carried and shown[0].endswith(f", from {first:%b} {first.day})")
    total = len(shown) + (int(more[1]) if more else 0)
    assert total == len(carried) + len(in_refresh)
    assert len(in_refresh) < edits  # the last hour's points are on the page, not mailed


@pytest.mark.parametrize("pair", ["google-default"], indirect=True)
def test_where_writes_mail_nobody_every_edit_reaches_the_invite_and_nothing_is_mailed(
    pair: Pair,
) -> None:
    first, second = pair.first, pair.first + WEEK
    assert pair.sync().writes == 2
    pair.now += HOUR
    pair.edit(first, "Quarterly goals", BO)
    assert pair.sync().writes == 1
    assert "Quarterly goals" in pair.invite(first)  # at once, not at the refresh

    live_a_week(pair)
    assert pair.emulator.mails == []
    assert "send Bo the hiring plan" in pair.invite(second)


@pytest.mark.parametrize("pair", ["outlook"], indirect=True)
def test_the_outlook_invite_refreshes_once_within_the_lead_time_and_a_dry_run_counts_the_mails(
    pair: Pair,
) -> None:
    first = pair.first
    pair.sync()
    pair.now += HOUR
    pair.edit(first, "Quarterly goals", BO)
    report = pair.sync()
    assert report.writes == 0 and report.deferred == 1
    assert "Quarterly goals" not in pair.invite(first)  # the page has it; the invite waits

    lead = pair.syncer.policy.mail_budget.lead
    pair.now = first - lead - timedelta(minutes=1)
    assert pair.sync().writes == 0
    pair.now = first - lead
    refreshed = pair.sync()
    assert refreshed.writes == 1 and refreshed.attendee_mails == 1
    assert "Quarterly goals" in pair.invite(first)

    # A point added after the refresh stays on the page; no second refresh mails Bo again.
    pair.now += timedelta(minutes=30)
    pair.edit(first, "Offsite dates", ANA)
    assert pair.sync().writes == 0
    assert "Offsite dates" not in pair.invite(first)
    assert pair.mails_to(BO)[first] == 2
