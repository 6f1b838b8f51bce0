"""The behaviour every provider must show, whatever calendar system is behind it.

A concrete module subclasses ``ProviderContract`` (as ``TestX``) and provides two
fixtures:

* ``provider`` – the ``Provider`` under test, holding the calendars in
  ``CALENDARS`` and listing at most ``PAGE_SIZE`` entries per page;
* ``world`` – a ``World`` on the same calendar system: what people and other
  clients do to calendars, which the provider itself can never do.

Tests only look at what the provider returns, never at its internals, so the
memory provider and the Google/Graph emulators are held to the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Protocol

import pytest

from providers.base import CursorExpired, NotFound, NotWritable, PreconditionFailed, Provider
from providers.calendar_world import WorldBuilder
from providers.memory import Recurrence
from providers.model import ChangePage, Event, Window

ANA = "ana@example.test"
BO = "bo@example.test"
CY = "cy@example.test"
OUTSIDER = "dee@elsewhere.test"
CALENDARS = (ANA, BO, CY)
PAGE_SIZE = 4

T0 = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)
WINDOW = Window(T0 - timedelta(days=1), T0 + timedelta(days=60))


class World(WorldBuilder, Protocol):
    """What people do to calendars: create, edit, move, cancel, delete; and server faults."""

    def copy_id(
        self, calendar: str, ical_uid: str, original_start: datetime | None = None
    ) -> str: ...

    def edit_description(self, calendar: str, event_id: str, description: str) -> None: ...

    def move_occurrence(
        self, ical_uid: str, original_start: datetime, new_start: datetime, new_end: datetime
    ) -> None: ...

    def cancel_occurrence(self, ical_uid: str, original_start: datetime) -> None: ...

    def delete_event(self, ical_uid: str) -> None: ...

    def expire_cursors(self, calendar: str) -> None: ...


def drain(
    provider: Provider, calendar: str, cursor: str | None, window: Window = WINDOW
) -> tuple[list[Event], list[str], str, list[ChangePage]]:
    """All pages of one sync, checking that only the last page carries the cursor."""
    pages = list(provider.changes(calendar, cursor, window))
    assert pages, "changes() must yield at least one page"
    assert all(page.cursor is None for page in pages[:-1])
    new_cursor = pages[-1].cursor
    assert new_cursor, "the last page must carry the next cursor"
    events = [event for page in pages for event in page.events]
    removed = [event_id for page in pages for event_id in page.removed]
    return events, removed, new_cursor, pages


def by_id(events: Sequence[Event]) -> dict[str, Event]:
    return {event.id: event for event in events}


class _Reader(HTMLParser):
    """The text of an HTML body as a person reads it: no head, one line per block."""

    _BLOCKS = frozenset({"br", "div", "p", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})
    _HIDDEN = frozenset({"head", "style", "script", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(re.sub(r"\s+", " ", data))


def shown(event: Event) -> str:
    """The description as a person reads it.

    The oracle keeps its own reader rather than ``providers.body.readable``:
    the contract checks what the providers and the block code do with bodies,
    so it must not share their reading of one.

    Exchange keeps every body as HTML and rewrites what is written (a document
    around it, ``<br>`` for line ends, Outlook's markup for what a person
    types), so what a round trip keeps is the text a reader sees, not the bytes.
    """
    if not event.description_is_html:
        return event.description
    reader = _Reader()
    reader.feed(event.description)
    reader.close()
    lines = [line.strip() for line in "".join(reader.parts).split("\n")]
    return "\n".join(lines).strip("\n")


class ProviderContract:
    """Inherit as ``TestSomething`` and provide the ``provider`` and ``world`` fixtures."""

    def one_to_one(self, world: World, title: str = "Ana / Bo 1:1", description: str = "") -> str:
        return world.create_event(ANA, [ANA, BO], title, T0, T0 + HOUR, description=description)

    def weekly(self, world: World, count: int = 6) -> str:
        return world.create_event(
            ANA, [BO], "Ana / Bo weekly", T0, T0 + HOUR, recurrence=Recurrence(7, count=count)
        )

    # ------------------------------------------------------------------ listing

    def test_calendars_lists_the_watched_calendars(self, provider: Provider) -> None:
        assert set(CALENDARS) <= set(provider.calendars())

    def test_full_sync_lists_single_event_and_series_master_with_cursor(
        self, provider: Provider, world: World
    ) -> None:
        single = self.one_to_one(world)
        series = self.weekly(world)

        events, removed, cursor, _ = drain(provider, ANA, None)

        assert removed == []
        assert cursor
        found = {event.ical_uid: event for event in events if event.original_start is None}
        assert found[single].recurring is False
        assert found[single].start == T0
        if series in found:
            assert found[series].recurring is True
            assert found[series].start == T0 and found[series].end == T0 + HOUR
        else:  # Graph's delta never lists masters: it expands the series in the window
            occurrences = sorted(
                (e for e in events if e.ical_uid == series), key=lambda e: e.key.original_start
            )
            assert [o.original_start for o in occurrences] == [T0 + n * WEEK for n in range(6)]
            assert occurrences[0].start == T0 and occurrences[0].end == T0 + HOUR
            assert all(o.series_id and not o.recurring for o in occurrences)
        assert all(event.etag for event in events)

    def test_full_sync_leaves_out_events_outside_the_window(
        self, provider: Provider, world: World
    ) -> None:
        late = T0 + timedelta(days=200)
        far = world.create_event(ANA, [BO], "later", late, late + HOUR)

        events, _, _, _ = drain(provider, ANA, None)

        assert far not in {event.ical_uid for event in events}

    def test_incremental_sync_without_changes_is_empty(
        self, provider: Provider, world: World
    ) -> None:
        self.one_to_one(world)
        self.weekly(world)
        _, _, cursor, _ = drain(provider, ANA, None)

        events, removed, next_cursor, _ = drain(provider, ANA, cursor)

        assert events == [] and removed == []
        again, gone, _, _ = drain(provider, ANA, next_cursor)
        assert again == [] and gone == []

    def test_incremental_sync_returns_an_edited_event(
        self, provider: Provider, world: World
    ) -> None:
        uid = self.one_to_one(world)
        self.one_to_one(world, title="untouched")
        _, _, cursor, _ = drain(provider, ANA, None)
        event_id = world.copy_id(ANA, uid)
        world.edit_description(ANA, event_id, "bring the slides")

        events, removed, _, _ = drain(provider, ANA, cursor)

        assert [event.id for event in events] == [event_id]
        assert shown(events[0]) == "bring the slides"
        assert removed == []

    def test_incremental_sync_reports_a_deleted_event_in_removed(
        self, provider: Provider, world: World
    ) -> None:
        uid = self.one_to_one(world)
        _, _, ana_cursor, _ = drain(provider, ANA, None)
        _, _, bo_cursor, _ = drain(provider, BO, None)
        ana_id, bo_id = world.copy_id(ANA, uid), world.copy_id(BO, uid)

        world.delete_event(uid)

        events, removed, _, _ = drain(provider, ANA, ana_cursor)
        assert ana_id in removed
        assert ana_id not in {event.id for event in events if not event.cancelled}
        _, bo_removed, _, _ = drain(provider, BO, bo_cursor)
        assert bo_id in bo_removed
        with pytest.raises(NotFound):
            provider.get(ANA, ana_id)

    def test_incremental_sync_reports_changes_outside_the_window(
        self, provider: Provider, world: World
    ) -> None:
        _, _, cursor, _ = drain(provider, ANA, None)
        late = T0 + timedelta(days=300)
        uid = world.create_event(ANA, [BO], "far away", late, late + HOUR)

        events, removed, _, _ = drain(provider, ANA, cursor)

        # A cursor bound to its window (Graph's delta) reports it as gone from the window.
        assert uid in {event.ical_uid for event in events} or world.copy_id(ANA, uid) in removed

    def test_paging_loses_and_duplicates_nothing(self, provider: Provider, world: World) -> None:
        uids = {
            world.create_event(ANA, [BO], f"meeting {n}", T0 + n * HOUR, T0 + (n + 1) * HOUR)
            for n in range(3 * PAGE_SIZE + 1)
        }

        events, _, cursor, pages = drain(provider, ANA, None)

        assert len(pages) > 1
        assert all(len(page.events) + len(page.removed) <= PAGE_SIZE for page in pages)
        assert sorted(event.ical_uid for event in events) == sorted(uids)

        for uid in uids:
            world.edit_description(ANA, world.copy_id(ANA, uid), "edited")
        changed, _, _, changed_pages = drain(provider, ANA, cursor)

        assert len(changed_pages) > 1
        assert sorted(event.ical_uid for event in changed) == sorted(uids)
        assert {shown(event) for event in changed} == {"edited"}

    def test_expired_cursor_raises_cursor_expired(self, provider: Provider, world: World) -> None:
        self.one_to_one(world)
        _, _, cursor, _ = drain(provider, ANA, None)

        world.expire_cursors(ANA)

        with pytest.raises(CursorExpired):
            drain(provider, ANA, cursor)
        _, _, fresh, _ = drain(provider, ANA, None)
        assert drain(provider, ANA, fresh)[0] == []

    # ---------------------------------------------------------------- instances

    def test_instances_apply_moves_and_cancellations(
        self, provider: Provider, world: World
    ) -> None:
        uid = self.weekly(world, count=6)
        moved, cancelled = T0 + WEEK, T0 + 2 * WEEK
        world.move_occurrence(
            uid, moved, moved + timedelta(days=1), moved + timedelta(days=1) + HOUR
        )
        world.cancel_occurrence(uid, cancelled)
        master = world.copy_id(ANA, uid)

        occurrences = provider.instances(ANA, master, WINDOW)

        # The organizer's cancelled occurrence is listed as cancelled or, as in
        # Graph, not at all; an attendee's copy (below) still shows it.
        expected = [T0 + n * WEEK for n in range(6)]
        if len(occurrences) == 5:
            expected.remove(cancelled)
        assert [o.original_start for o in occurrences] == expected
        assert all(o.series_id == master and o.ical_uid == uid for o in occurrences)
        assert len({o.id for o in occurrences}) == len(expected)
        shifted = occurrences[1]
        assert shifted.start == moved + timedelta(days=1)
        assert shifted.original_start == moved
        assert shifted.id == world.copy_id(ANA, uid, moved)
        assert not shifted.cancelled
        assert [o.cancelled for o in occurrences] == [s == cancelled for s in expected]
        theirs = provider.instances(BO, world.copy_id(BO, uid), WINDOW)
        assert [o.original_start for o in theirs] == [T0 + n * WEEK for n in range(6)]
        assert [o.cancelled for o in theirs] == [n == 2 for n in range(6)]

    def test_instances_only_within_the_window(self, provider: Provider, world: World) -> None:
        uid = world.create_event(
            ANA, [BO], "endless", T0, T0 + HOUR, recurrence=Recurrence(interval_days=1)
        )
        window = Window(T0 + timedelta(days=10), T0 + timedelta(days=13))

        occurrences = provider.instances(ANA, world.copy_id(ANA, uid), window)

        assert [o.start for o in occurrences] == [T0 + timedelta(days=n) for n in (10, 11, 12)]

    def test_instances_of_an_unknown_series_raise_not_found(self, provider: Provider) -> None:
        with pytest.raises(NotFound):
            provider.instances(ANA, "no-such-series", WINDOW)

    def test_get_unknown_event_raises_not_found(self, provider: Provider) -> None:
        with pytest.raises(NotFound):
            provider.get(ANA, "no-such-event")

    def test_get_reads_a_generated_occurrence(self, provider: Provider, world: World) -> None:
        uid = self.weekly(world)
        occurrence_id = world.copy_id(ANA, uid, T0 + 3 * WEEK)

        occurrence = provider.get(ANA, occurrence_id)

        assert occurrence.original_start == T0 + 3 * WEEK
        assert occurrence.start == T0 + 3 * WEEK
        assert occurrence.series_id == world.copy_id(ANA, uid)
        assert not occurrence.recurring

    # ------------------------------------------------------------------- writes

    def test_update_with_current_etag_writes_description_and_tag(
        self, provider: Provider, world: World
    ) -> None:
        uid = self.one_to_one(world, description="hello")
        before = provider.get(ANA, world.copy_id(ANA, uid))

        written = provider.update_description(ANA, before.id, "hello\nagenda", before.etag, "tok1")

        assert written.etag and written.etag != before.etag
        assert shown(written) == "hello\nagenda"
        reread = provider.get(ANA, before.id)
        assert shown(reread) == "hello\nagenda"
        assert reread.tag == "tok1"
        assert reread.etag == written.etag

    def test_update_with_the_same_text_still_changes_the_etag(
        self, provider: Provider, world: World
    ) -> None:
        uid = self.one_to_one(world, description="same")
        before = provider.get(ANA, world.copy_id(ANA, uid))

        written = provider.update_description(ANA, before.id, "same", before.etag, "tok")

        assert written.etag != before.etag

    def test_stale_etag_raises_precondition_failed_and_changes_nothing(
        self, provider: Provider, world: World
    ) -> None:
        uid = self.one_to_one(world, description="v1")
        event_id = world.copy_id(ANA, uid)
        stale = provider.get(ANA, event_id).etag
        world.edit_description(ANA, event_id, "v2 by a person")
        current = provider.get(ANA, event_id)

        with pytest.raises(PreconditionFailed):
            provider.update_description(ANA, event_id, "ours", stale, "tok")

        after = provider.get(ANA, event_id)
        assert shown(after) == "v2 by a person"
        assert after.etag == current.etag
        assert after.tag is None

    def test_writing_an_occurrence_leaves_master_and_siblings_untouched(
        self, provider: Provider, world: World
    ) -> None:
        uid = self.weekly(world)
        master_id = world.copy_id(ANA, uid)
        master = provider.get(ANA, master_id)
        before = provider.instances(ANA, master_id, WINDOW)
        target = before[1]

        written = provider.update_description(ANA, target.id, "agenda 2", target.etag, "tok2")

        after = provider.instances(ANA, master_id, WINDOW)
        assert [o.id for o in after] == [o.id for o in before]
        for old, new in zip(before, after, strict=True):
            if old.id == target.id:
                assert shown(new) == "agenda 2" and new.etag == written.etag
                assert new.tag == "tok2"
            else:
                assert new == old
        assert provider.get(ANA, master_id) == master

    def test_the_organizers_write_reaches_the_attendees_copy(
        self, provider: Provider, world: World
    ) -> None:
        uid = self.weekly(world)
        when = T0 + WEEK
        ours = provider.get(ANA, world.copy_id(ANA, uid, when))
        theirs_id = world.copy_id(BO, uid, when)
        theirs_before = provider.get(BO, theirs_id)

        provider.update_description(ANA, ours.id, "shared agenda", ours.etag, "tok")

        theirs = provider.get(BO, theirs_id)
        assert shown(theirs) == "shared agenda"
        assert theirs.etag != theirs_before.etag
        assert theirs.tag is None, "our tag belongs to the organizer's copy only"

    def test_our_own_write_comes_back_as_a_change(self, provider: Provider, world: World) -> None:
        uid = self.one_to_one(world)
        _, _, cursor, _ = drain(provider, ANA, None)
        event = provider.get(ANA, world.copy_id(ANA, uid))

        written = provider.update_description(ANA, event.id, "agenda", event.etag, "tok")

        events, _, _, _ = drain(provider, ANA, cursor)
        assert [(e.id, e.etag, shown(e), e.tag) for e in events] == [
            (event.id, written.etag, "agenda", "tok")
        ]

    def test_writing_a_series_master_raises_not_writable(
        self, provider: Provider, world: World
    ) -> None:
        uid = self.weekly(world)
        master = provider.get(ANA, world.copy_id(ANA, uid))

        with pytest.raises(NotWritable):
            provider.update_description(ANA, master.id, "x", master.etag, "tok")

    # ------------------------------------------------------------------- copies

    def test_attendee_copy_of_a_one_to_one_lists_both_with_organizer_flagged(
        self, provider: Provider, world: World
    ) -> None:
        uid = self.one_to_one(world)

        ours = provider.get(ANA, world.copy_id(ANA, uid))
        theirs = provider.get(BO, world.copy_id(BO, uid))

        assert theirs.ical_uid == ours.ical_uid == uid
        assert ours.is_organizer_copy and not theirs.is_organizer_copy
        assert theirs.organizer == ANA
        assert theirs.calendar_id == BO
        people = {a.email: a for a in theirs.attendees}
        assert set(people) == {ANA, BO}
        assert people[ANA].is_organizer and not people[BO].is_organizer
        assert {a.email for a in ours.attendees} == {ANA, BO}

    def test_only_held_calendars_get_copies(self, provider: Provider, world: World) -> None:
        uid = world.create_event(ANA, [OUTSIDER], "Ana / Dee", T0, T0 + HOUR)

        events, _, _, _ = drain(provider, ANA, None)

        ours = next(event for event in events if event.ical_uid == uid)
        assert {a.email for a in ours.attendees} == {ANA, OUTSIDER}
        assert uid not in {e.ical_uid for e in drain(provider, BO, None)[0]}

    def test_an_attendee_edit_stays_in_their_copy(self, provider: Provider, world: World) -> None:
        uid = self.one_to_one(world, description="invite")
        theirs = world.copy_id(BO, uid)

        world.edit_description(BO, theirs, "my private scribbles")

        assert shown(provider.get(BO, theirs)) == "my private scribbles"
        assert shown(provider.get(ANA, world.copy_id(ANA, uid))) == "invite"

    def test_writing_an_attendees_copy_raises_not_writable(
        self, provider: Provider, world: World
    ) -> None:
        uid = self.one_to_one(world, description="invite")
        theirs = provider.get(BO, world.copy_id(BO, uid))

        with pytest.raises(NotWritable):
            provider.update_description(BO, theirs.id, "ours", theirs.etag, "tok")

        assert provider.get(BO, theirs.id) == theirs
