"""A CalDAV organization end to end: the engine, the CalDAV plugin, and Radicale or Xandikos.

Every scenario runs against both servers. The invites are read back from
the server with a client of the tests' own (``CalDavWorld``), as a person's
calendar app would read them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from google.oauth2 import service_account
from sqlalchemy import Engine, select

from providers.base import Provider
from providers.caldav.dav import CalDavProvider
from providers.calendar_model import Recurrence
from providers.emulators.google import GoogleEmulator
from providers.google.calendar import GoogleProvider
from providers.google.grant import SCOPES as GOOGLE_SCOPES
from providers.model import Event, Window
from syncd import agenda, block
from syncd.engine import CalendarSync, Report
from syncd.store import sessions, transaction
from syncd.store.models import Meeting, Pair
from tests.e2e.org import policy
from tests.providers.caldav_servers import CalDavWorld, Server
from tests.providers.test_caldav import connected

ANA, BO = "ana@example.org", "bo@example.org"
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)
BERLIN = ZoneInfo("Europe/Berlin")


def start_of_next_week() -> datetime:
    today = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    return today + timedelta(days=7 - today.weekday())


@pytest.fixture
def world(caldav_server: Server) -> CalDavWorld:
    return CalDavWorld(caldav_server, (ANA, BO))


@pytest.fixture
def provider(world: CalDavWorld, tmp_path: Path) -> Iterator[CalDavProvider]:
    yield from connected(world, tmp_path, (ANA, BO))


def sync(provider: Provider, db_engine: Engine, now: datetime) -> Report:
    syncer = CalendarSync(provider, sessions(db_engine), policy(), account="dav")
    total = Report()
    for person in (ANA, BO):
        total.merge(syncer.sync(person, now))
    return total


def component(world: CalDavWorld, calendar: str, uid: str, original: datetime | None) -> object:
    stored = world.read(calendar, f"{uid}.ics")
    for part in stored.walk("VEVENT"):
        rid = part.get("RECURRENCE-ID")
        if original is None and rid is None:
            return part
        if original is not None and rid is not None and rid.dt == original:
            return part
    return None


def block_at(world: CalDavWorld, calendar: str, uid: str, original: datetime) -> str | None:
    part = component(world, calendar, uid, original)
    if part is None:
        return None
    return block.extract(str(part.get("DESCRIPTION", "")))  # type: ignore[attr-defined]


def test_a_weekly_series_with_exceptions_gets_blocks_in_the_next_two_and_keeps_its_shape(
    world: CalDavWorld, provider: CalDavProvider, db_engine: Engine
) -> None:
    first = start_of_next_week()
    now = first - timedelta(days=1)
    uid = world.create_event(
        ANA, [ANA, BO], "Ana / Bo 1:1", first, first + HOUR, recurrence=Recurrence(7, count=8)
    )
    moved_from, cancelled, modified = first + WEEK, first + 2 * WEEK, first + 3 * WEEK
    moved_to = moved_from + timedelta(days=1, hours=2)
    world.move_occurrence(uid, moved_from, moved_to, moved_to + HOUR)
    world.cancel_occurrence(uid, cancelled)
    world.edit_description(ANA, world.copy_id(ANA, uid, modified), "bring the roadmap")
    master_before = world.read(ANA, f"{uid}.ics").walk("VEVENT")[0]

    report = sync(provider, db_engine, now)

    assert not report.errors, report.errors
    # the next two occurrences: the first one and the moved one (the cancelled is skipped)
    assert block_at(world, ANA, uid, first) is not None
    assert block_at(world, ANA, uid, moved_from) is not None
    assert block_at(world, ANA, uid, modified) is None
    # ...and Bo's copy carries the same blocks, delivered by syncd or the server
    assert block_at(world, BO, uid, first) == block_at(world, ANA, uid, first)
    # every exception stays where it was
    stored = world.read(ANA, f"{uid}.ics")
    master = next(c for c in stored.walk("VEVENT") if "RECURRENCE-ID" not in c)
    assert master["DTSTART"].dt == master_before["DTSTART"].dt
    assert master["RRULE"] == master_before["RRULE"]
    assert cancelled in [d.dt for e in _as_list(master.get("EXDATE")) for d in e.dts]
    moved = component(world, ANA, uid, moved_from)
    assert moved is not None and moved["DTSTART"].dt == moved_to  # type: ignore[index]
    changed = component(world, ANA, uid, modified)
    assert "bring the roadmap" in str(changed["DESCRIPTION"])  # type: ignore[index]

    again = sync(provider, db_engine, now)
    assert again.writes == 0 and not again.errors


def _as_list(value: object) -> list[icalendar.prop.vDDDLists]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]  # type: ignore[return-value]


def test_a_dst_change_inside_the_window_keeps_the_local_meeting_time(
    world: CalDavWorld, provider: CalDavProvider
) -> None:
    """Berlin moves to summer time on the last Sunday of March: 10:00 stays 10:00."""
    year = datetime.now(UTC).year + 1
    first = datetime(year, 3, 18, 10, 0, tzinfo=BERLIN)
    uid = f"dst-{year}@example.org"
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Apple Inc.//Calendar//EN\r\n"
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\n"
        "DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n"
        "DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n"
        "END:VTIMEZONE\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART;TZID=Europe/Berlin:{year}0318T100000\r\n"
        f"DTEND;TZID=Europe/Berlin:{year}0318T103000\r\n"
        "RRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Ana / Bo 1:1\r\n"
        f"ORGANIZER:mailto:{ANA}\r\nATTENDEE:mailto:{ANA}\r\nATTENDEE:mailto:{BO}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    world.put(ANA, f"{uid}.ics", text)
    window_start = first - timedelta(days=1)
    occurrences = provider.instances(
        ANA, f"{uid}.ics", Window(window_start, window_start + 5 * WEEK)
    )

    local = [o.start.astimezone(BERLIN) for o in occurrences]
    assert [t.strftime("%H:%M") for t in local] == ["10:00"] * 4
    assert [o.start.astimezone(UTC).hour for o in occurrences] == [9, 9, 8, 8]
    # and a block written into the third (after the change) keeps it there
    third = occurrences[2]
    provider.update_description(ANA, third.id, "agenda", third.etag, "tok")
    written = provider.get(ANA, third.id)
    assert written.start == third.start and written.end == third.end
    stored = world.read(ANA, f"{uid}.ics")
    override = next(c for c in stored.walk("VEVENT") if "RECURRENCE-ID" in c)
    assert override["DTSTART"].dt.astimezone(BERLIN).strftime("%H:%M") == "10:00"


class EditsFirst:
    """A provider through which a second client edits the event just before syncd writes."""

    def __init__(self, inner: CalDavProvider, edit: callable) -> None:  # type: ignore[valid-type]
        self._inner = inner
        self._edit = edit
        self.races = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def update_description(
        self, calendar: str, event_id: str, description: str, etag: str, tag: str | None
    ) -> Event:
        if self.races == 0:
            self.races += 1
            self._edit(event_id)
        return self._inner.update_description(calendar, event_id, description, etag, tag)


def test_an_edit_through_a_second_client_during_the_write_survives(
    world: CalDavWorld, provider: CalDavProvider, db_engine: Engine
) -> None:
    when = start_of_next_week() + timedelta(days=2)
    uid = world.create_event(ANA, [ANA, BO], "Ana / Bo", when, when + HOUR, description="v1")

    def person_edits(event_id: str) -> None:
        world.edit_description(ANA, event_id, "v1\nDial-in: 555-0100")

    racing = EditsFirst(provider, person_edits)
    report = sync(racing, db_engine, when - timedelta(days=1))  # type: ignore[arg-type]

    assert racing.races == 1 and not report.errors
    assert report.conflicts >= 1
    description = str(component(world, ANA, uid, None)["DESCRIPTION"])  # type: ignore[index]
    assert "Dial-in: 555-0100" in description
    assert block.extract(description) is not None


def test_a_pair_on_caldav_and_google_shares_one_agenda(
    world: CalDavWorld, provider: CalDavProvider, db_engine: Engine
) -> None:
    """Ana's calendar is on a CalDAV server, Bo's in Google Workspace: one pair, one history."""
    when = start_of_next_week() + timedelta(days=1)
    now = when - timedelta(days=1)
    uid = world.create_event(ANA, [ANA, BO], "Ana / Bo", when, when + HOUR)
    factory = sessions(db_engine)
    with GoogleEmulator([BO]) as google:
        # Bo's Google calendar holds his invited copy of Ana's meeting
        google.create_event(ANA, [ANA, BO], "Ana / Bo", when, when + HOUR, ical_uid=uid)
        delegating = service_account.Credentials.from_service_account_info(
            google.service_account_info(), scopes=list(GOOGLE_SCOPES)
        )
        gmail = GoogleProvider([BO], delegating.with_subject, api_root=google.api_root)
        dav = CalendarSync(provider, factory, policy(), account="dav")
        gsync = CalendarSync(gmail, factory, policy(), account="google", sleep=lambda s: None)
        dav.sync(ANA, now)
        gsync.sync(BO, now)
        with transaction(factory) as session:
            (meeting,) = session.scalars(select(Meeting)).all()  # both copies: one agenda
            ours = block.extract(str(component(world, ANA, uid, None)["DESCRIPTION"]))  # type: ignore[index]
            assert ours is not None and meeting.token in ours
            agenda.add_action_item(
                session, meeting, "share the Q3 deck", owner=BO, author=ANA, now=now
            )

        # Later Bo books a follow-up in Google: same pair, Ana's item in its invite
        later = when + timedelta(days=2)
        follow_up = google.create_event(BO, [BO, ANA], "follow-up", later, later + HOUR)
        gsync.sync(BO, when + 2 * HOUR)
        text = block.extract(google.description(BO, google.copy_id(BO, follow_up)))
        assert text is not None and "share the Q3 deck" in text
        with transaction(factory) as session:
            assert len(session.scalars(select(Pair)).all()) == 1
