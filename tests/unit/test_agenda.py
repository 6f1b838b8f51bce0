"""The agenda domain: identity, carry-over and who may see and edit what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from providers.model import OccurrenceKey
from syncd import agenda
from syncd.store import sessions, transaction

ANA, BO, CY = "ana@example.org", "bo@example.org", "cy@example.org"
NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
TEMPLATE = ("What is top of mind?", "Career goals?")


@pytest.fixture
def session(db_engine: Engine):
    with transaction(sessions(db_engine)) as session:
        yield session


def meeting(session, when: datetime, uid: str = "series-1", people=(BO, ANA)):
    pair, _ = agenda.pair_for(session, people, NOW)
    return agenda.meeting_for(
        session,
        pair,
        OccurrenceKey(uid, when),
        start=when,
        end=when + timedelta(minutes=30),
        title="1:1",
        cancelled=False,
        template=TEMPLATE,
        now=NOW,
    )


def test_a_pair_is_the_two_people_in_either_order(session) -> None:
    first, created = agenda.pair_for(session, (BO, ANA), NOW)
    again, created_again = agenda.pair_for(session, (ANA, BO), NOW)
    assert created and not created_again and first.id == again.id
    assert (first.person_a, first.person_b) == (ANA, BO)
    with pytest.raises(ValueError):
        agenda.pair_for(session, (ANA, ANA), NOW)


def test_tokens_are_long_random_and_distinct(session) -> None:
    meetings = [meeting(session, NOW + timedelta(days=7 * i)) for i in range(20)]
    tokens = {m.token for m in meetings} | {meetings[0].pair.token}
    assert len(tokens) == 21
    # 24 random bytes in url-safe base64: 192 bits, well over the 128 required
    assert all(len(t) == 32 for t in tokens)


def test_only_the_first_meeting_of_a_new_pair_starts_from_the_template(session) -> None:
    first = meeting(session, NOW)
    second = meeting(session, NOW + timedelta(days=7))
    session.refresh(first)
    assert [p.text for p in first.talking_points] == list(TEMPLATE)
    assert second.talking_points == []


def test_the_same_occurrence_key_finds_the_same_meeting_and_follows_a_move(session) -> None:
    original = meeting(session, NOW)
    pair = original.pair
    moved = agenda.meeting_for(
        session, pair, OccurrenceKey("series-1", NOW),
        start=NOW + timedelta(hours=5), end=NOW + timedelta(hours=6), title="moved",
        cancelled=False, template=TEMPLATE, now=NOW,
    )  # fmt: skip
    assert moved.id == original.id and moved.token == original.token
    assert moved.start == NOW + timedelta(hours=5) and moved.title == "moved"


def test_open_items_are_computed_from_every_earlier_meeting_not_copied(session) -> None:
    week0 = meeting(session, NOW)
    week1 = meeting(session, NOW + timedelta(days=7))
    week2 = meeting(session, NOW + timedelta(days=14))
    elsewhere = meeting(session, NOW, uid="other", people=(ANA, CY))
    a = agenda.add_action_item(session, week0, "send slides", owner=ANA, author=BO, now=NOW)
    agenda.add_action_item(session, week1, "book offsite", owner=BO, author=BO, now=NOW)
    agenda.add_action_item(session, elsewhere, "not this pair", owner=CY, author=ANA, now=NOW)

    assert [i.text for i, _ in agenda.open_action_items(session, week1)] == ["send slides"]
    assert [i.text for i, _ in agenda.open_action_items(session, week2)] == [
        "send slides",
        "book offsite",
    ]
    # the invite's block shows only what came out of meetings that have ended
    ended = week0.end + timedelta(minutes=1)
    assert [i.text for i, _ in agenda.open_action_items(session, week2, ended_by=ended)] == [
        "send slides"
    ]

    agenda.set_action_item_done(session, a, ANA, NOW)
    assert [i.text for i, _ in agenda.open_action_items(session, week2)] == ["book offsite"]


def test_the_block_view_names_owners_and_origin_dates(session) -> None:
    week0 = meeting(session, NOW)
    week1 = meeting(session, NOW + timedelta(days=7))
    agenda.add_action_item(session, week0, "send slides", owner=ANA, author=BO, now=NOW)
    agenda.add_talking_point(session, week1, "Q3 goals", BO, NOW)

    view = agenda.block_view(
        session, week1, base_url="https://a.example/", zone=UTC, now=NOW + timedelta(days=1)
    )

    assert view.url == f"https://a.example/m/{week1.token}"
    assert [(p.text, p.author) for p in view.talking_points] == [("Q3 goals", "bo")]
    assert [(i.text, i.owner, i.origin) for i in view.action_items] == [
        ("send slides", "ana", NOW.date())
    ]


def test_private_notes_are_seen_by_their_author_only(session) -> None:
    week0 = meeting(session, NOW)
    agenda.save_note(session, week0, ANA, "shared plan", private=False, now=NOW)
    agenda.save_note(session, week0, ANA, "ana's private thoughts", private=True, now=NOW)
    agenda.save_note(session, week0, BO, "bo's private thoughts", private=True, now=NOW)
    agenda.save_note(session, week0, BO, "shared plan, edited", private=False, now=NOW)

    seen_by_ana = {n.body for n in agenda.notes_visible_to(session, week0, ANA)}
    seen_by_bo = {n.body for n in agenda.notes_visible_to(session, week0, BO)}

    assert seen_by_ana == {"shared plan, edited", "ana's private thoughts"}
    assert seen_by_bo == {"shared plan, edited", "bo's private thoughts"}


def test_only_the_two_people_edit_and_own_items(session) -> None:
    week0 = meeting(session, NOW)
    with pytest.raises(PermissionError):
        agenda.add_talking_point(session, week0, "sneaky", CY, NOW)
    with pytest.raises(PermissionError):
        agenda.save_note(session, week0, CY, "x", private=True, now=NOW)
    with pytest.raises(ValueError):
        agenda.add_action_item(session, week0, "x", owner=CY, author=ANA, now=NOW)


def test_someone_with_the_link_edits_but_never_writes_a_private_note(session) -> None:
    week0 = meeting(session, NOW)
    point = agenda.add_talking_point(session, week0, "from the link", agenda.LINK_ACTOR, NOW)
    assert point.author == agenda.LINK_ACTOR and "@" not in agenda.LINK_ACTOR
    agenda.save_note(session, week0, agenda.LINK_ACTOR, "shared", private=False, now=NOW)
    with pytest.raises(PermissionError):
        agenda.save_note(session, week0, agenda.LINK_ACTOR, "mine", private=True, now=NOW)
    with pytest.raises(PermissionError):
        agenda.add_talking_point(session, week0, "x", CY, NOW)


def test_talking_points_swap_with_a_neighbour_and_stay_put_at_the_ends(session) -> None:
    week0 = meeting(session, NOW)
    template = [point.text for point in week0.talking_points]
    a = agenda.add_talking_point(session, week0, "a", ANA, NOW)
    b = agenda.add_talking_point(session, week0, "b", BO, NOW)

    def order() -> list[str]:
        return [point.text for point in week0.talking_points][len(template) :]

    agenda.move_talking_point(session, b, ANA, -1)
    assert order() == ["b", "a"]
    agenda.move_talking_point(session, a, agenda.LINK_ACTOR, 1)  # already last
    assert order() == ["b", "a"]
    agenda.move_talking_point(session, b, BO, 1)
    assert order() == ["a", "b"]
    with pytest.raises(PermissionError):
        agenda.move_talking_point(session, b, CY, -1)
    with pytest.raises(ValueError):
        agenda.move_talking_point(session, b, ANA, 2)
    assert order() == ["a", "b"]


def test_either_person_edits_any_item_and_its_author_stays(session) -> None:
    week0 = meeting(session, NOW)
    point = agenda.add_talking_point(session, week0, "Q3 goals", ANA, NOW)
    item = agenda.add_action_item(
        session, week0, "send slides", owner=ANA, author=ANA, now=NOW, due=NOW.date()
    )

    agenda.edit_talking_point(session, point, BO, "Q4 goals")
    assert (point.text, point.author) == ("Q4 goals", ANA)

    agenda.edit_action_item(session, item, BO, text="send the deck")
    assert (item.text, item.owner, item.due, item.author) == ("send the deck", ANA, NOW.date(), ANA)
    agenda.edit_action_item(session, item, agenda.LINK_ACTOR, owner=BO)
    assert (item.text, item.owner, item.due) == ("send the deck", BO, NOW.date())
    agenda.edit_action_item(session, item, ANA, due=None)  # None clears; leaving it out keeps
    assert item.due is None and item.owner == BO


def test_an_edit_is_refused_to_strangers_and_for_empty_text_or_a_third_owner(session) -> None:
    week0 = meeting(session, NOW)
    point = agenda.add_talking_point(session, week0, "Q3 goals", ANA, NOW)
    item = agenda.add_action_item(session, week0, "send slides", owner=ANA, author=ANA, now=NOW)
    with pytest.raises(PermissionError):
        agenda.edit_talking_point(session, point, CY, "mine now")
    with pytest.raises(PermissionError):
        agenda.edit_action_item(session, item, CY, text="mine now")
    with pytest.raises(ValueError):
        agenda.edit_talking_point(session, point, ANA, " \n\t")
    with pytest.raises(ValueError):
        agenda.edit_action_item(session, item, ANA, text="")
    with pytest.raises(ValueError):
        agenda.edit_action_item(session, item, ANA, text="for cy", owner=CY)
    # A refused edit changes nothing, not even the fields that were fine.
    assert (point.text, item.text, item.owner) == ("Q3 goals", "send slides", ANA)
    with pytest.raises(PermissionError):
        agenda.delete_talking_point(session, point, CY)
    with pytest.raises(PermissionError):
        agenda.delete_action_item(session, item, CY)


def test_an_edited_item_is_carried_as_edited_and_a_deleted_one_not_at_all(session) -> None:
    week0 = meeting(session, NOW)
    week1 = meeting(session, NOW + timedelta(days=7))
    keep = agenda.add_action_item(session, week0, "send slides", owner=ANA, author=BO, now=NOW)
    drop = agenda.add_action_item(session, week0, "by mistake", owner=BO, author=BO, now=NOW)
    agenda.edit_action_item(session, keep, ANA, text="send the deck", owner=BO)
    agenda.delete_action_item(session, drop, ANA)

    ended = week0.end + timedelta(minutes=1)
    view = agenda.block_view(session, week1, base_url="https://a.example", zone=UTC, now=ended)
    assert [(i.text, i.owner) for i in view.action_items] == [("send the deck", "bo")]
    assert [i.text for i in week0.action_items] == ["send the deck"]


def test_a_deleted_talking_point_leaves_the_others_in_order_and_movable(session) -> None:
    week0 = meeting(session, NOW)
    template = len(week0.talking_points)
    a = agenda.add_talking_point(session, week0, "a", ANA, NOW)
    b = agenda.add_talking_point(session, week0, "b", BO, NOW)
    c = agenda.add_talking_point(session, week0, "c", BO, NOW)
    agenda.delete_talking_point(session, b, agenda.LINK_ACTOR)
    assert [p.text for p in week0.talking_points][template:] == ["a", "c"]
    agenda.move_talking_point(session, c, ANA, -1)
    assert [p.text for p in week0.talking_points][template:] == ["c", "a"]
    assert a in week0.talking_points
