"""No event a calendar server returns can stop a calendar, on Google and Microsoft alike.

Each test puts broken resources on the wire next to a well-formed 1:1 (the
emulators' ``faults.inject`` appends them, exactly as given, to every page
of changes), syncs through the real client libraries, the adapter and the
engine, and checks what a person would notice: the 1:1 got its block, the
sync did not fail, the broken events were counted as ``unreadable``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.oauth2 import service_account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from providers.emulators.google import GoogleEmulator
from providers.emulators.graph import GraphEmulator
from providers.google.calendar import GoogleProvider
from providers.google.grant import SCOPES as GOOGLE_SCOPES
from syncd import block
from syncd.engine import UNREADABLE, CalendarSync, Report
from syncd.store import connect, migrate, sessions, transaction
from syncd.store.models import Occurrence
from tests.e2e.org import policy
from tests.e2e.test_microsoft_tenant import graph_provider

ANA, BO = "ana@example.org", "bo@example.org"
PEOPLE = (ANA, BO)


@dataclass
class Side:
    """One emulator and syncd's engine on it."""

    name: str
    emulator: Any
    syncer: CalendarSync
    now: datetime

    def one_on_one(self, title: str = "Ana / Bo", days: int = 2) -> tuple[str, datetime]:
        start = self.now + timedelta(days=days)
        uid = self.emulator.create_event(ANA, [ANA, BO], title, start, start + timedelta(hours=1))
        return uid, start

    def block_of(self, uid: str) -> str | None:
        copy = self.emulator.copy_id(ANA, uid)
        return block.extract(self.emulator.description(ANA, copy))

    def sync(self) -> Report:
        return self.syncer.sync(ANA, self.now)

    def event(self, **fields: Any) -> dict[str, Any]:
        """A well-formed event resource of this system, with ``fields`` put over it."""
        start, end = self.now + timedelta(days=3), self.now + timedelta(days=3, hours=1)
        if self.name == "google":
            base: dict[str, Any] = {
                "kind": "calendar#event",
                "id": "broken1",
                "etag": '"1"',
                "status": "confirmed",
                "iCalUID": "broken1@google.com",
                "summary": "Broken",
                "start": {"dateTime": start.isoformat()},
                "end": {"dateTime": end.isoformat()},
                "organizer": {"email": ANA, "self": True},
                "attendees": [{"email": ANA, "organizer": True, "self": True}, {"email": BO}],
            }
        else:
            base = {
                "id": "AAMkBroken1",
                "@odata.etag": 'W/"1"',
                "type": "singleInstance",
                "iCalUId": "040000008200E00074C5B7101A82E0080000000Broken1",
                "subject": "Broken",
                "start": {
                    "dateTime": start.strftime("%Y-%m-%dT%H:%M:%S.0000000"),
                    "timeZone": "UTC",
                },
                "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"},
                "isOrganizer": True,
                "organizer": {"emailAddress": {"address": ANA, "name": "Ana"}},
                "attendees": [
                    {"type": "required", "emailAddress": {"address": BO, "name": "Bo"}},
                ],
                "body": {"contentType": "text", "content": ""},
                # complete as delta sends it, so the adapter reads it from the page, not a GET
                "singleValueExtendedProperties": [],
            }
        return {**base, **fields}


def google_side(factory: Any, emulator: GoogleEmulator, now: datetime) -> Side:
    delegating = service_account.Credentials.from_service_account_info(
        emulator.service_account_info(), scopes=list(GOOGLE_SCOPES)
    )
    provider = GoogleProvider(
        PEOPLE, lambda person: delegating.with_subject(person), api_root=emulator.api_root
    )
    syncer = CalendarSync(provider, factory, policy(), account="acme", sleep=lambda s: None)
    return Side("google", emulator, syncer, now)


@pytest.fixture(params=["google", "microsoft"])
def side(request: pytest.FixtureRequest, db_engine: Engine) -> Iterator[Side]:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    factory = sessions(db_engine)
    if request.param == "google":
        with GoogleEmulator(PEOPLE, page_size=20) as emulator:
            yield google_side(factory, emulator, now)
        return
    with GraphEmulator(PEOPLE) as graph:
        provider = graph_provider(graph, PEOPLE)
        syncer = CalendarSync(provider, factory, policy(), account="m365", sleep=lambda s: None)
        yield Side("microsoft", graph, syncer, now)
        provider.close()


def named_breakages(side: Side) -> dict[str, object]:
    """The malformed events the issue names, in the wire format of ``side``."""
    if side.name == "google":
        return {
            "no start": side.event(id="nostart", start=None),
            "no end": {k: v for k, v in side.event(id="noend").items() if k != "end"},
            "unparseable time": side.event(id="badtime", start={"dateTime": "next Tuesday"}),
            "time of the wrong type": side.event(id="numtime", start={"dateTime": 1700000000}),
            "start as a string": side.event(id="strstart", start="2026-01-01"),
            "attendees as a string": side.event(id="strattendees", attendees="ana, bo"),
            "organizer as a list": side.event(id="listorganizer", organizer=[ANA]),
            "absurd description": side.event(id="huge", description="x" * 4_500_000),
            "an id too long to index": side.event(id="i" * 5000),
            "a number, not an event": 42,
            "no id at all": {"status": "confirmed"},
        }
    return {
        "no start": side.event(id="nostart", start=None),
        "unparseable time": side.event(id="badtime", start={"dateTime": "soon", "timeZone": "UTC"}),
        "unknown zone": side.event(
            id="badzone", start={"dateTime": "2026-12-10T10:00:00", "timeZone": "Mars/Olympus"}
        ),
        "attendees of the wrong type": side.event(id="numattendees", attendees=[7, 8]),
        "body as a list": side.event(id="listbody", body=["x"]),
        "absurd description": side.event(
            id="huge", body={"contentType": "text", "content": "x" * 4_500_000}
        ),
        "a string, not an event": "event",
        "null": None,
    }


def test_each_named_malformed_event_is_skipped_and_the_calendar_syncs_on(
    side: Side, caplog: pytest.LogCaptureFixture
) -> None:
    uid, _ = side.one_on_one()
    broken = named_breakages(side)
    side.emulator.faults.inject(ANA, *broken.values())

    with caplog.at_level(logging.WARNING, logger="syncd.engine"):
        report = side.sync()

    assert report.errors == []
    assert report.skipped[UNREADABLE] == len(broken)
    assert side.block_of(uid) is not None
    warned = [r.getMessage() for r in caplog.records if "unreadable event" in r.getMessage()]
    assert len(warned) == len(broken)
    assert all(len(line.splitlines()) == 1 for line in warned)

    # Later passes still work: a new 1:1 arriving next to the same broken events gets its
    # block; the same broken events are counted again but not warned about again.
    caplog.clear()
    later, _ = side.one_on_one("Ana / Bo again", days=4)
    with caplog.at_level(logging.WARNING, logger="syncd.engine"):
        again = side.sync()
    assert again.errors == [] and side.block_of(later) is not None
    assert again.skipped[UNREADABLE] == len(broken)
    assert not [r for r in caplog.records if "unreadable event" in r.getMessage()]


def test_unstorable_text_is_cleaned_and_the_1_1_still_gets_its_block(side: Side) -> None:
    """A subject cut mid-emoji (a lone surrogate) or a NUL fails a database insert if kept."""
    uid, _ = side.one_on_one("Ana / Bo \ud83d 1:1 \x00")

    report = side.sync()

    assert report.errors == []
    assert side.block_of(uid) is not None
    with transaction(side.syncer.factory) as session:
        titles = session.scalars(select(Occurrence.title)).all()
    assert "Ana / Bo \ufffd 1:1 \ufffd" in titles


def test_a_full_sync_keeps_the_mirror_row_of_an_event_that_became_unreadable(
    side: Side,
) -> None:
    uid, _ = side.one_on_one()
    assert side.sync().errors == []
    copy = side.emulator.copy_id(ANA, uid)
    with transaction(side.syncer.factory) as session:
        before = session.scalars(select(Occurrence).where(Occurrence.event_id == copy)).one()
        token_row = before.id

    # the same event, now broken on the wire, during a full resync
    side.emulator.faults.inject(ANA, side.event(id=copy, start={"dateTime": "garbage"}))
    side.emulator.expire_cursors(ANA)
    report = side.sync()

    assert report.errors == [] and report.full_syncs == 1
    with transaction(side.syncer.factory) as session:
        rows = session.scalars(select(Occurrence).where(Occurrence.event_id == copy)).all()
    assert [row.id for row in rows] == [token_row]


# ------------------------------------------------------------------- the property

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
TIMES = st.sampled_from(
    ["", "2026-13-45T99:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
     "2026-12-10T10:00:00", "2026-12-10", "\ud83d", "2026-12-10T10:00:00Z"]
)  # fmt: skip
FIELDS = st.sampled_from(
    ["id", "start", "end", "summary", "subject", "attendees", "organizer", "recurrence",
     "recurringEventId", "originalStartTime", "seriesMasterId", "type", "body", "description",
     "extendedProperties", "singleValueExtendedProperties", "iCalUID", "iCalUId", "status",
     "etag", "@odata.etag", "isCancelled", "eventType", "showAs", "@removed", "isOrganizer"]
)  # fmt: skip


@st.composite
def payloads(draw: st.DrawFn, side: Side) -> list[object]:
    """Events with some fields replaced by anything JSON can carry, and non-events."""
    found: list[object] = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            found.append(draw(JSON))
            continue
        changes: dict[str, object] = {}
        for name in draw(st.lists(FIELDS, min_size=1, max_size=4)):
            if name in ("start", "end") and draw(st.booleans()):
                changes[name] = {"dateTime": draw(TIMES), "timeZone": draw(st.text(max_size=12))}
            else:
                changes[name] = draw(JSON)
        found.append(side.event(**{"id": f"junk{len(found)}", **changes}))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", ["google", "microsoft"])
def test_no_payload_ever_stops_a_sync_and_the_1_1_beside_it_gets_its_block(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    engine = connect(f"sqlite:///{tmp_path_factory.mktemp('unreadable') / 'syncd.db'}")
    migrate(engine)
    factory = sessions(engine)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    emulator: Any = (
        GoogleEmulator(PEOPLE, page_size=20) if name == "google" else GraphEmulator(PEOPLE)
    )
    with emulator:
        if name == "google":
            side = google_side(factory, emulator, now)
        else:
            provider = graph_provider(emulator, PEOPLE)
            syncer = CalendarSync(provider, factory, policy(), account="m365", sleep=lambda s: None)
            side = Side(name, emulator, syncer, now)
        made = iter(range(10_000))

        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            junk = data.draw(payloads(side))
            json.dumps(junk)  # what the emulator sends is JSON, as a server's would be
            emulator.faults.clear()
            emulator.faults.inject(ANA, *junk)
            number = next(made)  # a new 1:1 each time, inside the horizon (the next 14 days)
            uid, _ = side.one_on_one(f"Ana / Bo {number}", days=1 + number % 12)
            report = side.sync()
            assert report.errors == [], report.errors
            assert side.block_of(uid) is not None

        check()
    engine.dispose()
