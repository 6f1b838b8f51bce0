"""What syncd costs the calendar APIs, counted on the emulators, so a regression fails the tests.

Counts, not timings: requests as the emulators received them from the real
client libraries. The bounds are issue #11's: a settled calendar with a
healthy push channel is listed at most 4 times a day; a change costs one
write and at most 3 calls; a Graph first sync at most 4 calls per calendar
on an organization of weekly 1:1s and a team meeting. (What the writes mail
the attendees is counted in test_attendee_mail.py.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from providers.emulators.google import GoogleEmulator
from providers.emulators.graph import GraphEmulator
from providers.memory import Recurrence
from syncd import push
from syncd.engine import CalendarSync
from syncd.scheduler import Cadence, tick
from syncd.store import sessions, transaction
from syncd.store.models import Calendar, PushChannel
from tests.e2e.org import BO, PEOPLE, Org, google_org, policy, seed
from tests.e2e.test_microsoft_tenant import graph_provider

STAFF = tuple(f"p{n}@example.org" for n in range(8))
READS = {"delta", "list", "get", "instances"}


def organization(emulator: GoogleEmulator | GraphEmulator, now: datetime) -> None:
    """The bench organization in small: everyone in one weekly 1:1, and a weekly team meeting."""
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    for n in range(0, len(STAFF), 2):
        slot = start + timedelta(hours=n)
        emulator.create_event(
            STAFF[n], [STAFF[n], STAFF[n + 1]], "1:1", slot, slot + timedelta(minutes=30),
            recurrence=Recurrence(interval_days=7),
        )  # fmt: skip
    emulator.create_event(
        STAFF[0], list(STAFF), "Team", start - timedelta(hours=2), start - timedelta(hours=1),
        recurrence=Recurrence(interval_days=7),
    )  # fmt: skip


def test_a_graph_first_sync_costs_at_most_four_calls_per_calendar(db_engine: Engine) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with GraphEmulator(STAFF) as emulator:
        organization(emulator, now)
        provider = graph_provider(emulator, STAFF)
        syncer = CalendarSync(provider, sessions(db_engine), policy(), account="contoso")
        try:
            writes = 0
            for person in STAFF:
                writes += syncer.sync(person, now).writes
        finally:
            provider.close()
    reads = Counter(r.mailbox for r in emulator.requests if r.op in READS)
    patches = Counter(r.mailbox for r in emulator.requests if r.op == "patch")
    assert set(reads) == set(STAFF)
    assert max(reads.values()) <= 4, reads
    # the blocks: the next two occurrences of each of the four 1:1s, in the organizers' copies
    assert writes == 8 and sum(patches.values()) == 8


@pytest.fixture
def org(db_engine: Engine) -> Iterator[Org]:
    with google_org(
        db_engine, datetime.now(UTC).replace(second=0, microsecond=0), page_size=50
    ) as org:
        yield org


def test_with_healthy_push_a_settled_calendar_is_listed_at_most_four_times_a_day(
    org: Org,
) -> None:
    seed(org)
    org.sync_all()
    org.sync_all()  # settled: our own writes came back once
    with transaction(org.factory) as session:
        for row in session.scalars(select(Calendar)):
            session.add(
                PushChannel(
                    calendar_id=row.id,
                    channel_id=f"ch-{row.id}",
                    resource_id="r",
                    token_digest=push.digest("t"),
                    expires=org.now + timedelta(days=7),
                    created_at=org.now,
                )
            )
    cadence = Cadence()  # the defaults an installation runs with
    sent = len(org.emulator.requests)
    start = org.now
    while org.now < start + timedelta(days=1):  # the worker's loop, every minute of a quiet day
        org.now += timedelta(minutes=1)
        tick(org.factory, {"acme": org.syncer}, org.now, cadence)

    lists = Counter(
        r.path.split("/calendars/", 1)[1].split("/", 1)[0]
        for r in org.emulator.requests[sent:]
        if r.op == "list"
    )
    others = {r.op for r in org.emulator.requests[sent:]} - {"list", "token"}
    assert set(lists) == set(PEOPLE)
    assert max(lists.values()) <= 4, lists
    assert others == set(), "a quiet day reads nothing but the change feed and writes nothing"


def test_a_change_costs_one_write_and_at_most_three_calls(org: Org) -> None:
    uid, first = seed(org)["weekly"]
    org.sync_all()
    org.sync_all()
    sent = len(org.emulator.requests)

    org.now += timedelta(minutes=1)  # well before anyone's next poll
    org.add_point(uid, first, "Hiring plan", BO)
    report = tick(org.factory, {"acme": org.syncer}, org.now + push.DEBOUNCE, Cadence())

    # the organizer's calendar, marked by the edit: its change feed, then the write on the
    # text that feed listed (the echo of our write is absorbed by the next poll)
    assert report.writes == 1 and report.calendars == 1
    assert org.calls_since(sent) == ["list", "patch"]
