"""Real-world-shaped ICS (Google, Outlook/Exchange, Apple, Nextcloud, Fastmail exports) read as
events, their occurrences agreeing with recurring-ical-events on the same window; malformed
ICS refused with a reason.

The oracle is recurring-ical-events run on the raw file by the test itself: the
provider's mapping (zones, all-day dates, overrides, cancellations, ids) must
say the same starts and ends.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
import x_wr_timezone

from providers.caldav import ics
from providers.model import Event, Unreadable

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ics"
GOOD = sorted(FIXTURES.glob("*.ics"))
BAD = sorted((FIXTURES / "malformed").glob("*.ics"))
START, END = datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 5, 1, tzinfo=UTC)
ZONE = ZoneInfo("Europe/Berlin")  # where floating times are read


def as_utc(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=ZONE)).astimezone(UTC)
    return datetime.combine(value, time(0), tzinfo=UTC)


def test_there_are_at_least_ten_real_world_shapes() -> None:
    assert len(GOOD) >= 10


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_a_real_world_file_reads_and_its_occurrences_agree_with_the_library(path: Path) -> None:
    resource = ics.parse(path.name, "", path.read_bytes())
    stored = list(ics.stored("ana@example.org", resource, ZONE))
    assert stored and all(isinstance(e, Event) for e in stored), stored

    ours = ics.occurrences("ana@example.org", resource, START, END, ZONE)

    raw = x_wr_timezone.to_standard(icalendar.Calendar.from_ical(path.read_bytes()))
    theirs = recurring_ical_events.of(raw).between(START, END)
    expected = sorted(
        (as_utc(c["DTSTART"].dt), as_utc(c["DTEND"].dt) if "DTEND" in c else None) for c in theirs
    )
    got = sorted(
        (e.start, e.end if expected and expected[0][1] is not None else None) for e in ours
    )
    assert got == expected
    assert len({e.id for e in ours}) == len(ours), "one id per occurrence"
    assert all(e.ical_uid == stored[0].ical_uid for e in ours)


def test_google_exports_are_read_in_their_calendar_zone_with_the_moved_occurrence() -> None:
    path = FIXTURES / "google_weekly_xwr.ics"
    resource = ics.parse(path.name, "", path.read_bytes())
    ours = ics.occurrences(
        "ana@example.org", resource, START, datetime(2030, 2, 1, tzinfo=UTC), ZONE
    )
    berlin = [(e.start.astimezone(ZoneInfo("Europe/Berlin")), e.title) for e in ours]
    assert [t.strftime("%d %H:%M") for t, _ in berlin] == ["07 10:00", "15 14:00", "28 10:00"]
    moved = ours[1]
    assert moved.original_start == datetime(2030, 1, 14, 9, 0, tzinfo=UTC)
    assert moved.id == f"{path.name}#20300114T090000Z" and moved.title.endswith("(moved)")


def test_outlook_rooms_optional_people_and_responses_are_told_apart() -> None:
    path = FIXTURES / "exchange_biweekly_count.ics"
    (master,) = ics.stored("bo@example.org", ics.parse(path.name, "", path.read_bytes()), ZONE)
    assert isinstance(master, Event) and master.recurring and master.is_organizer_copy
    people = {a.email: a for a in master.attendees}
    assert people["projector@example.org"].is_resource
    assert people["fay@example.org"].optional and people["fay@example.org"].response == "tentative"
    assert people["cy@example.org"].response == "declined"
    assert people["bo@example.org"].is_organizer and people["bo@example.org"].name == "Bo Berg"


def test_all_day_events_are_dates_and_a_cancelled_override_is_cancelled() -> None:
    allday = FIXTURES / "nextcloud_allday_recurring.ics"
    resource = ics.parse(allday.name, "", allday.read_bytes())
    days = ics.occurrences("fay@example.org", resource, START, END, ZONE)
    assert all(e.all_day for e in days)
    assert [e.start.date().isoformat() for e in days] == ["2030-01-07", "2030-01-21", "2030-01-28"]
    nextcloud = FIXTURES / "nextcloud_override_cancelled.ics"
    series = ics.occurrences(
        "dee@example.org", ics.parse(nextcloud.name, "", nextcloud.read_bytes()), START, END, ZONE
    )
    assert [e.cancelled for e in series] == [False, True, False, False, False, False]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("missing_uid.ics", "without UID"),
        ("bad_date.ics", "DTSTART"),
        ("broken_folding.ics", "DTSTART"),
        ("unknown_zone.ics", "unknown time zone 'Mars/Olympus_Mons'"),
    ],
)
def test_malformed_ics_is_refused_with_its_reason(name: str, reason: str) -> None:
    path = FIXTURES / "malformed" / name
    with pytest.raises(ValueError, match=reason) as caught:
        ics.parse(name, "", path.read_bytes())
    assert "\n" not in str(caught.value)


def test_every_malformed_shape_has_a_fixture() -> None:
    assert {p.name for p in BAD} >= {
        "missing_uid.ics", "bad_date.ics", "broken_folding.ics", "unknown_zone.ics"
    }  # fmt: skip


def test_a_broken_override_is_skipped_with_a_reason_and_the_series_still_reads() -> None:
    fixture = (FIXTURES / "google_weekly_xwr.ics").read_text()
    text = fixture.replace("DTEND:20300115T133000Z", "DTEND:20300115T120000Z")
    resource = ics.parse("g.ics", "", text)  # its end now lies before its start
    outcomes = list(ics.stored("ana@example.org", resource, ZONE))
    assert isinstance(outcomes[0], Event)
    assert isinstance(outcomes[1], Unreadable) and "DTEND" in outcomes[1].reason


def test_writing_one_occurrence_keeps_everything_else_in_the_resource() -> None:
    """Alarms, vendor properties, the series' rule and exceptions, other overrides: untouched."""
    path = FIXTURES / "outlook_windows_tz.ics"
    resource = ics.parse(path.name, "", path.read_bytes())
    third = ics.occurrences("gus@example.org", resource, START, END, ZONE)[2]
    _, stamp = ics.split_id(third.id)
    assert stamp is not None

    changed, written = ics.with_description(resource, stamp, "agenda", "tok", ZONE)

    before = resource.master()
    after = next(c for c in changed.walk("VEVENT") if "RECURRENCE-ID" not in c)
    assert before is not None
    for key in ("DTSTART", "DTEND", "RRULE", "EXDATE", "X-MICROSOFT-CDO-BUSYSTATUS", "LOCATION"):
        assert after[key].to_ical() == before[key].to_ical(), key
    assert [a.to_ical() for a in after.walk("VALARM")] == [
        a.to_ical() for a in before.walk("VALARM")
    ]
    assert after.get("DESCRIPTION") == before.get("DESCRIPTION")
    # the new override: this occurrence's times, our text and tag, the series' alarm
    assert written["RECURRENCE-ID"].dt.astimezone(UTC) == third.original_start
    assert written["DTSTART"].dt.astimezone(UTC) == third.start
    assert str(written["DESCRIPTION"]) == "agenda" and str(written[ics.TAG_PROPERTY]) == "tok"
    assert "RRULE" not in written and list(written.walk("VALARM"))
    assert (
        changed.walk("VTIMEZONE")[0].to_ical() == resource.calendar.walk("VTIMEZONE")[0].to_ical()
    )
    reread = ics.parse(path.name, "", changed.to_ical())
    others = ics.occurrences("gus@example.org", reread, START, END, ZONE)
    assert [e.start for e in others] == [
        e.start for e in ics.occurrences("gus@example.org", resource, START, END, ZONE)
    ]
