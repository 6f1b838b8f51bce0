"""The memory provider: the shared contract, then what only a fake offers.

Faults, recorded requests and state files are how the engine's tests drive and
observe it, so they are held to their word here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from providers.base import (
    AuthRevoked,
    CursorExpired,
    NotFound,
    NotWritable,
    PreconditionFailed,
    Provider,
    RateLimited,
    Transient,
)
from providers.memory import MemoryProvider, Recurrence, Request
from providers.model import Event, Window

from .contract import (
    ANA,
    BO,
    CALENDARS,
    CY,
    HOUR,
    OUTSIDER,
    PAGE_SIZE,
    T0,
    WEEK,
    WINDOW,
    ProviderContract,
    by_id,
    drain,
)


@pytest.fixture
def memory() -> MemoryProvider:
    return MemoryProvider(CALENDARS, page_size=PAGE_SIZE)


class TestMemory(ProviderContract):
    @pytest.fixture
    def provider(self, memory: MemoryProvider) -> MemoryProvider:
        return memory

    @pytest.fixture
    def world(self, memory: MemoryProvider) -> MemoryProvider:
        return memory


def weekly(memory: MemoryProvider, count: int | None = 6) -> str:
    return memory.create_event(
        ANA, [BO], "Ana / Bo weekly", T0, T0 + HOUR, recurrence=Recurrence(count=count)
    )


def test_it_is_a_provider(memory: MemoryProvider) -> None:
    assert isinstance(memory, Provider)


# ---------------------------------------------------------------------- faults


def test_fail_raises_the_given_error_the_given_number_of_times(memory: MemoryProvider) -> None:
    error = Transient("backend hiccup")
    memory.faults.fail("calendars", error, times=2)

    for _ in range(2):
        with pytest.raises(Transient) as raised:
            memory.calendars()
        assert raised.value is error
    assert memory.calendars() == list(CALENDARS)

    assert [r.outcome for r in memory.requests] == ["Transient", "Transient", "ok"]


def test_failures_queue_per_operation(memory: MemoryProvider) -> None:
    uid = memory.create_event(ANA, [BO], "1:1", T0, T0 + HOUR)
    event_id = memory.copy_id(ANA, uid)
    memory.faults.fail("get", RateLimited(retry_after=3))
    memory.faults.fail("get", AuthRevoked())

    with pytest.raises(RateLimited) as limited:
        memory.get(ANA, event_id)
    assert limited.value.retry_after == 3
    memory.calendars()  # another operation does not consume get's failures
    with pytest.raises(AuthRevoked):
        memory.get(ANA, event_id)
    assert memory.get(ANA, event_id).id == event_id


def test_fail_refuses_an_unknown_operation(memory: MemoryProvider) -> None:
    with pytest.raises(ValueError):
        memory.faults.fail("list", Transient())


def test_a_failure_can_hit_a_later_page(memory: MemoryProvider) -> None:
    for n in range(PAGE_SIZE * 2):
        memory.create_event(ANA, [BO], f"m{n}", T0 + n * HOUR, T0 + (n + 1) * HOUR)
    pages = memory.changes(ANA, None, WINDOW)
    first = next(pages)
    memory.faults.fail("changes", Transient())

    with pytest.raises(Transient):
        next(pages)

    assert first.cursor is None
    assert [(r.op, r.page, r.outcome) for r in memory.requests] == [
        ("changes", 0, "ok"),
        ("changes", 1, "Transient"),
    ]


def test_before_write_lets_a_person_edit_between_read_and_write(memory: MemoryProvider) -> None:
    uid = memory.create_event(ANA, [BO], "1:1", T0, T0 + HOUR, description="v1")
    event = memory.get(ANA, memory.copy_id(ANA, uid))
    seen: list[tuple[str, str]] = []

    def person_types(calendar: str, event_id: str) -> None:
        seen.append((calendar, event_id))
        memory.edit_description(calendar, event_id, "v2 typed by Ana")

    memory.faults.before_write(person_types, times=1)

    with pytest.raises(PreconditionFailed):
        memory.update_description(ANA, event.id, "v1 + agenda", event.etag, "tok")

    assert seen == [(ANA, event.id)]
    assert memory.description(ANA, event.id) == "v2 typed by Ana"
    assert memory.writes == []
    assert memory.requests[-1].outcome == "PreconditionFailed"

    fresh = memory.get(ANA, event.id)
    memory.update_description(ANA, event.id, "v2 typed by Ana + agenda", fresh.etag, "tok")
    assert memory.description(BO, memory.copy_id(BO, uid)) == "v2 typed by Ana + agenda"
    assert len(seen) == 1, "times=1 hook fired once"


def test_expire_cursors_only_hits_older_cursors_of_that_calendar(memory: MemoryProvider) -> None:
    memory.create_event(ANA, [BO], "1:1", T0, T0 + HOUR)
    ana = drain(memory, ANA, None)[2]
    bo = drain(memory, BO, None)[2]

    memory.faults.expire_cursors(ANA)

    with pytest.raises(CursorExpired):
        list(memory.changes(ANA, ana, WINDOW))
    assert drain(memory, BO, bo)[0] == []
    fresh = drain(memory, ANA, None)[2]
    assert drain(memory, ANA, fresh)[0] == []


@pytest.mark.parametrize("cursor", ["", "garbage", "m1:0", "m1:x:1", "m2:0:0", "m1:0:999"])
def test_a_malformed_or_unknown_cursor_is_expired(memory: MemoryProvider, cursor: str) -> None:
    with pytest.raises(CursorExpired):
        list(memory.changes(ANA, cursor, WINDOW))


# -------------------------------------------------------------------- records


def test_requests_record_what_was_sent(memory: MemoryProvider) -> None:
    uid = memory.create_event(ANA, [BO], "1:1", T0, T0 + HOUR)
    event_id = memory.copy_id(ANA, uid)
    cursor = drain(memory, ANA, None)[2]
    event = memory.get(ANA, event_id)

    memory.update_description(ANA, event_id, "agenda", event.etag, "tok")
    with pytest.raises(PreconditionFailed):
        memory.update_description(ANA, event_id, "again", event.etag, "tok")
    drain(memory, ANA, cursor)

    assert memory.requests == [
        Request("changes", ANA),
        Request("get", ANA, event_id=event_id),
        Request(
            "update_description",
            ANA,
            event_id=event_id,
            etag=event.etag,
            description="agenda",
            tag="tok",
        ),
        Request(
            "update_description",
            ANA,
            event_id=event_id,
            etag=event.etag,
            outcome="PreconditionFailed",
            description="again",
            tag="tok",
        ),
        Request("changes", ANA, cursor=cursor),
    ]
    assert memory.writes == [memory.requests[2]]


def test_world_building_is_not_recorded(memory: MemoryProvider) -> None:
    uid = memory.create_event(ANA, [BO], "1:1", T0, T0 + HOUR)
    memory.edit_description(ANA, memory.copy_id(ANA, uid), "x")
    memory.description(ANA, memory.copy_id(ANA, uid))
    assert memory.requests == []


# ------------------------------------------------------------------- semantics


def test_copies_have_their_own_ids_and_occurrence_ids_follow_google(
    memory: MemoryProvider,
) -> None:
    uid = weekly(memory)
    ana, bo = memory.copy_id(ANA, uid), memory.copy_id(BO, uid)

    assert ana != bo
    assert memory.copy_id(ANA, uid, T0 + WEEK) == f"{ana}_20300114T100000Z"
    with pytest.raises(KeyError):
        memory.copy_id(CY, uid)


def test_a_time_off_the_series_grid_is_not_an_occurrence(memory: MemoryProvider) -> None:
    uid = weekly(memory, count=3)
    master = memory.copy_id(ANA, uid)

    for stamp in ("20300108T100000Z", "20300128T100000Z", "garbage"):
        with pytest.raises(NotFound):
            memory.get(ANA, f"{master}_{stamp}")
    with pytest.raises(NotFound):
        memory.get(BO, f"{master}_20300107T100000Z")  # Ana's id in Bo's calendar


def test_until_bounds_a_series_inclusively(memory: MemoryProvider) -> None:
    uid = memory.create_event(
        ANA, [BO], "daily", T0, T0 + HOUR, recurrence=Recurrence(1, until=T0 + timedelta(days=2))
    )
    occurrences = memory.instances(ANA, memory.copy_id(ANA, uid), WINDOW)
    assert [o.start for o in occurrences] == [T0 + timedelta(days=n) for n in range(3)]


def test_instances_follow_a_move_across_the_window_edge(memory: MemoryProvider) -> None:
    uid = weekly(memory, count=None)
    master = memory.copy_id(ANA, uid)
    window = Window(T0 + 3 * WEEK - HOUR, T0 + 4 * WEEK - HOUR)
    memory.move_occurrence(uid, T0 + 3 * WEEK, T0 + 5 * WEEK, T0 + 5 * WEEK + HOUR)
    memory.move_occurrence(uid, T0 + 8 * WEEK, T0 + 3 * WEEK + HOUR, T0 + 3 * WEEK + 2 * HOUR)

    [inside] = memory.instances(ANA, master, window)

    assert inside.original_start == T0 + 8 * WEEK
    assert inside.start == T0 + 3 * WEEK + HOUR


def test_exceptions_appear_in_full_and_incremental_sync(memory: MemoryProvider) -> None:
    uid = weekly(memory)
    memory.move_occurrence(uid, T0 + WEEK, T0 + WEEK + HOUR, T0 + WEEK + 2 * HOUR)
    cursor = drain(memory, BO, None)[2]

    memory.cancel_occurrence(uid, T0 + 2 * WEEK)

    changed, _, _, _ = drain(memory, BO, cursor)
    assert [(e.original_start, e.cancelled) for e in changed] == [(T0 + 2 * WEEK, True)]
    full = drain(memory, BO, None)[0]
    assert [(e.original_start, e.cancelled) for e in full] == [
        (None, False),
        (T0 + WEEK, False),
        (T0 + 2 * WEEK, True),
    ]
    assert full[0].recurring and full[1].start == T0 + WEEK + HOUR


def test_deleting_a_series_removes_master_and_exceptions(memory: MemoryProvider) -> None:
    uid = weekly(memory)
    memory.cancel_occurrence(uid, T0 + WEEK)
    cursor = drain(memory, BO, None)[2]
    master = memory.copy_id(BO, uid)

    memory.delete_event(uid)

    events, removed, _, _ = drain(memory, BO, cursor)
    assert events == []
    assert sorted(removed) == sorted([master, f"{master}_20300114T100000Z"])


def test_a_series_edit_changes_master_and_every_occurrence_etag(memory: MemoryProvider) -> None:
    uid = weekly(memory)
    master = memory.copy_id(ANA, uid)
    before = memory.instances(ANA, master, WINDOW)
    cursor = drain(memory, ANA, None)[2]

    memory.update_event(uid, title="Ana / Bo weekly (renamed)")

    after = memory.instances(ANA, master, WINDOW)
    assert all(new.etag != old.etag for old, new in zip(before, after, strict=True))
    assert {o.title for o in after} == {"Ana / Bo weekly (renamed)"}
    assert [e.id for e in drain(memory, ANA, cursor)[0]] == [master]


def test_attendee_changes_add_and_remove_copies(memory: MemoryProvider) -> None:
    uid = weekly(memory)
    bo_master = memory.copy_id(BO, uid)
    bo_cursor = drain(memory, BO, None)[2]
    cy_cursor = drain(memory, CY, None)[2]

    memory.update_event(uid, attendees=[CY, OUTSIDER])

    assert drain(memory, BO, bo_cursor)[1] == [bo_master]
    [cy_master] = drain(memory, CY, cy_cursor)[0]
    assert cy_master.ical_uid == uid and cy_master.recurring
    assert {a.email for a in cy_master.attendees} == {ANA, CY, OUTSIDER}


def test_a_calendar_added_later_sees_what_it_was_invited_to(memory: MemoryProvider) -> None:
    uid = memory.create_event(ANA, ["eve@example.test"], "Ana / Eve", T0, T0 + HOUR)

    memory.add_calendar("eve@example.test")

    [event] = drain(memory, "eve@example.test", None)[0]
    assert event.ical_uid == uid and not event.is_organizer_copy


def test_organizer_description_edit_reaches_attendees_and_inherited_exceptions(
    memory: MemoryProvider,
) -> None:
    uid = weekly(memory)
    memory.move_occurrence(uid, T0 + WEEK, T0 + WEEK + HOUR, T0 + WEEK + 2 * HOUR)
    moved_before = memory.get(BO, memory.copy_id(BO, uid, T0 + WEEK))

    memory.edit_description(ANA, memory.copy_id(ANA, uid), "series notes")

    moved_after = memory.get(BO, memory.copy_id(BO, uid, T0 + WEEK))
    assert memory.description(BO, memory.copy_id(BO, uid)) == "series notes"
    assert moved_after.description == "series notes"
    assert moved_after.etag != moved_before.etag


def test_an_event_whose_organizer_we_do_not_hold_is_read_only(memory: MemoryProvider) -> None:
    uid = memory.create_event(OUTSIDER, [ANA], "Dee / Ana", T0, T0 + HOUR, html=True)
    event = memory.get(ANA, memory.copy_id(ANA, uid))

    assert not event.is_organizer_copy
    assert event.description_is_html
    with pytest.raises(NotWritable):
        memory.update_description(ANA, event.id, "<p>x</p>", event.etag, "tok")


def test_a_write_to_an_unknown_calendar_is_not_found(memory: MemoryProvider) -> None:
    with pytest.raises(NotFound):
        memory.update_description("nobody@example.test", "x", "y", "1", None)


def test_a_write_without_a_tag_keeps_the_stored_one(memory: MemoryProvider) -> None:
    uid = memory.create_event(ANA, [BO], "1:1", T0, T0 + HOUR)
    event = memory.get(ANA, memory.copy_id(ANA, uid))
    first = memory.update_description(ANA, event.id, "a", event.etag, "tok")

    second = memory.update_description(ANA, event.id, "b", first.etag, None)

    assert second.tag == "tok"


# ----------------------------------------------------------------- persistence


def busy_world(memory: MemoryProvider) -> str:
    uid = weekly(memory, count=None)
    memory.create_event(ANA, [BO, OUTSIDER], "<b>html</b>", T0, T0 + HOUR, html=True)
    memory.move_occurrence(uid, T0 + WEEK, T0 + WEEK + HOUR, T0 + WEEK + 2 * HOUR)
    memory.cancel_occurrence(uid, T0 + 2 * WEEK)
    memory.edit_description(BO, memory.copy_id(BO, uid), "Bo's own note")
    occurrence = memory.get(ANA, memory.copy_id(ANA, uid, T0 + 3 * WEEK))
    memory.update_description(ANA, occurrence.id, "agenda", occurrence.etag, "tok3")
    return uid


def test_save_and_load_round_trip_exactly(memory: MemoryProvider, tmp_path: Path) -> None:
    uid = busy_world(memory)
    cursors = {calendar: drain(memory, calendar, None)[2] for calendar in CALENDARS}
    memory.edit_description(ANA, memory.copy_id(ANA, uid), "after the cursor")
    path = tmp_path / "world.json"

    memory.save(path)
    loaded = MemoryProvider.load(path)

    for calendar in CALENDARS:
        assert drain(loaded, calendar, None)[:2] == drain(memory, calendar, None)[:2]
        assert (
            drain(loaded, calendar, cursors[calendar])[:3]
            == drain(memory, calendar, cursors[calendar])[:3]
        )
        for master in (e for e in drain(memory, calendar, None)[0] if e.recurring):
            assert loaded.instances(calendar, master.id, WINDOW) == memory.instances(
                calendar, master.id, WINDOW
            )
    again = tmp_path / "again.json"
    loaded.save(again)
    assert again.read_text() == path.read_text()
    assert loaded.page_size == memory.page_size


def test_a_loaded_world_keeps_issuing_fresh_etags(memory: MemoryProvider, tmp_path: Path) -> None:
    uid = busy_world(memory)
    seen = {e.etag for c in CALENDARS for e in drain(memory, c, None)[0]}
    path = tmp_path / "world.json"
    memory.save(path)
    loaded = MemoryProvider.load(path)
    event = loaded.get(ANA, loaded.copy_id(ANA, uid, T0 + 4 * WEEK))

    written = loaded.update_description(ANA, event.id, "x", event.etag, "tok")

    assert written.etag not in seen
    assert loaded.create_event(ANA, [BO], "new", T0, T0 + HOUR) != uid


def test_load_refuses_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError):
        MemoryProvider.load(path)


# ------------------------------------------------------------------ properties

WIDE = Window(T0 - timedelta(days=30), T0 + timedelta(days=400))
ACTIONS = ("edit", "attendee_edit", "move", "cancel", "delete", "rename", "invite", "write")


def apply(memory: MemoryProvider, uids: list[str], action: str, a: int, b: int) -> None:
    """One random thing a person or syncd does, skipped when it does not apply."""
    if not uids:
        return
    uid = uids[a % len(uids)]
    if action == "delete":
        memory.delete_event(uid)
        uids.remove(uid)
        return
    master = memory.get(ANA, memory.copy_id(ANA, uid))
    when = T0 + (b % 4) * WEEK if master.recurring else None
    if action in ("move", "cancel") and when is None:
        return
    if action == "edit":
        memory.edit_description(ANA, memory.copy_id(ANA, uid, when), f"edit {b}")
    elif action == "attendee_edit":
        memory.edit_description(BO, memory.copy_id(BO, uid, when), f"bo {b}")
    elif action == "move" and when is not None:
        if not memory.get(ANA, memory.copy_id(ANA, uid, when)).cancelled:
            start = when + timedelta(hours=b % 30)
            memory.move_occurrence(uid, when, start, start + HOUR)
    elif action == "cancel" and when is not None:
        memory.cancel_occurrence(uid, when)
    elif action == "rename":
        memory.update_event(uid, title=f"renamed {b}")
    elif action == "invite":
        memory.update_event(uid, attendees=[BO, CY] if b % 2 else [BO])
    elif action == "write":
        target = memory.get(ANA, memory.copy_id(ANA, uid, when))
        memory.update_description(ANA, target.id, f"agenda {b}", target.etag, f"tok{b}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(ACTIONS), st.integers(0, 99), st.integers(0, 99)),
        max_size=25,
    ),
    st.integers(1, 5),
)
def test_incremental_sync_keeps_a_replica_equal_to_a_full_sync(
    steps: list[tuple[str, int, int]], page_size: int
) -> None:
    memory = MemoryProvider(CALENDARS, page_size=page_size)
    uids = [
        weekly(memory, count=None),
        weekly(memory, count=4),
        memory.create_event(ANA, [BO], "ad hoc", T0 + HOUR, T0 + 2 * HOUR),
    ]
    replicas: dict[str, dict[str, Event]] = {}
    cursors: dict[str, str] = {}
    for calendar in CALENDARS:
        events, _, cursors[calendar], _ = drain(memory, calendar, None, WIDE)
        replicas[calendar] = by_id(events)

    for action, a, b in steps:
        apply(memory, uids, action, a, b)
        for calendar in CALENDARS:
            events, removed, cursors[calendar], _ = drain(memory, calendar, cursors[calendar], WIDE)
            replica = replicas[calendar]
            for event_id in removed:
                replica.pop(event_id, None)
            replica.update(by_id(events))

    for calendar in CALENDARS:
        full = by_id(drain(memory, calendar, None, WIDE)[0])
        assert replicas[calendar] == full
        for event_id, event in full.items():
            assert memory.get(calendar, event_id) == event
        assert drain(memory, calendar, cursors[calendar], WIDE)[:2] == ([], [])


def test_times_are_utc(memory: MemoryProvider) -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2030, 1, 7, 11, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    uid = memory.create_event(ANA, [BO], "1:1", local, local + HOUR)
    event = memory.get(ANA, memory.copy_id(ANA, uid))
    assert event.start == T0 and event.start.tzinfo is UTC
    with pytest.raises(ValueError):
        memory.create_event(ANA, [BO], "naive", datetime(2030, 1, 7), datetime(2030, 1, 8))
