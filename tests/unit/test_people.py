"""People by name: what calendars and directories call them, kept apart from addresses."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from providers.memory import Recurrence
from providers.model import Attendee
from syncd import people
from syncd.store import connect, migrate, sessions, transaction
from syncd.store.models import ActionItem, TalkingPoint
from tests.unit.web.conftest import Browser, Org
from tests.unit.world import ANA, BO, MONDAY, World, tuesday, weekly

NOW = MONDAY


def test_a_name_is_one_clean_line_and_never_just_the_address() -> None:
    assert people.clean("  Ana \n Lima\t") == "Ana Lima"
    assert people.clean("Ana\u202eamiL") == "AnaamiL"  # a bidi override cannot reorder the page
    assert people.clean("x" * 500) == "x" * people.MAX_NAME
    assert people.clean("ANA@example.org", ANA) == ""


def test_the_directory_name_wins_over_an_invite_and_an_empty_one_changes_nothing(
    db_engine: Engine,
) -> None:
    factory = sessions(db_engine)
    with transaction(factory) as session:
        people.remember(session, {ANA: "ana (typed by a guest)"}, NOW)
    with transaction(factory) as session:
        people.remember(session, {ANA: "Ana Lima"}, NOW, source=people.DIRECTORY)
    with transaction(factory) as session:
        people.remember(session, {ANA: "Someone Else", BO: ""}, NOW + timedelta(hours=1))
        named = people.lookup(session, [ANA, BO])
    assert named[ANA].shown == "Ana Lima"
    assert named[BO].name == "" and named[BO].shown == "bo"


def test_the_manager_is_whoever_the_directory_says_manages_the_other(db_engine: Engine) -> None:
    factory = sessions(db_engine)
    with transaction(factory) as session:
        people.remember_managers(session, {BO: ANA, ANA: None}, NOW)
    with transaction(factory) as session:
        named = people.lookup(session, [ANA, BO])
    assert people.manager_in((ANA, BO), named) == ANA
    assert people.manager_in((BO, ANA), named) == ANA
    assert people.manager_in((ANA, "cy@example.org"), named) is None


def named_weekly(world: World, bo: str = "Bo Berg") -> str:
    """Ana's weekly 1:1 with Bo, Tuesdays 10:00, the invite naming both; its UID."""
    first = MONDAY + timedelta(days=1, hours=2)
    return world.provider.create_event(
        ANA,
        [Attendee(ANA, "Ana Lima"), Attendee(BO, bo)],
        "Ana / Bo 1:1",
        first,
        first + timedelta(minutes=30),
        recurrence=Recurrence(interval_days=7),
    )


def test_the_page_names_both_people_as_their_invite_does(db_engine: Engine) -> None:
    org = Org(db_engine)
    org.uid = named_weekly(org)
    org.settle()
    with transaction(org.factory) as session:
        people.remember_managers(session, {BO: ANA}, NOW)  # as a directory would
    meeting, pair = org.tokens(0)
    bo = Browser(org.app(), BO)
    page = bo.get(f"/m/{meeting}").text
    assert f'title="{ANA}">Ana Lima</span> <span class="role">manager</span>' in page
    assert f'title="{BO}">Bo Berg (you)</span>' in page
    assert f'<option value="{ANA}">Ana Lima</option>' in page  # owners are chosen by name
    assert "All meetings with Ana Lima" in page
    assert "Ana Lima" in bo.get(f"/p/{pair}").text
    assert "1:1 with </span>Ana Lima" in bo.get("/").text
    data = bo.get(f"/api/v1/meetings/{meeting}").json()
    assert data["names"] == {ANA: "Ana Lima", BO: "Bo Berg"} and data["manager"] == ANA


def test_a_world_without_names_shows_addresses_first_parts(db_engine: Engine) -> None:
    world = World(db_engine)
    weekly(world)
    world.settle()
    with transaction(world.factory) as session:
        assert {n.shown for n in people.lookup(session, [ANA, BO]).values()} == {"ana", "bo"}


def test_the_invite_names_people_and_a_rebuilt_database_reads_the_names_back(
    db_engine: Engine, tmp_path: Path
) -> None:
    world = World(db_engine)
    uid = named_weekly(world, bo="Bo (Ops) Berg")
    world.settle()
    world.add_talking_point(uid, tuesday(0), "Hiring plan", BO)
    world.now = tuesday(0) + timedelta(minutes=31)  # week 0 ends: the point is carried
    world.add_action_item(uid, tuesday(0), "Send the notes", owner=BO, author=ANA)
    world.settle()
    text = world.block_in(ANA, uid, tuesday(1)) or ""
    assert "• Hiring plan (Bo Ops Berg, from Nov 24)" in text  # the name, in the block
    assert "☐ Bo Ops Berg: Send the notes (from Nov 24)" in text

    # the database is lost; a new one reads the invites back, names and all
    fresh = connect(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    migrate(fresh)
    rebuilt = World(fresh, provider=world.provider)
    rebuilt.now = world.now
    rebuilt.settle()
    with transaction(rebuilt.factory) as session:
        point = session.scalars(
            select(TalkingPoint).where(TalkingPoint.text == "Hiring plan")
        ).one()
        item = session.scalars(select(ActionItem).where(ActionItem.text == "Send the notes")).one()
        # "Bo Ops Berg" is Bo again: the point is his, the item his to do, on week 0
        assert point.author == BO and item.owner == BO
        assert point.meeting.original_start == tuesday(0)
    fresh.dispose()
