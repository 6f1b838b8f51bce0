"""A person's home page: their next 1:1s and the action items across all their pairs.

Fellow and Lattice open on "my 1:1s" and "my action items"; a person who
only ever opens agendas from invites still needs one place that answers
"what do I owe, and what is owed to me" without opening every pair. It is
read-only and built from the same rows the agenda pages show, so it can
never disagree with them: a pair's next meeting is ``agenda.next_meeting``,
and the points it lists are the meeting's own open ones plus those carried
to it (``agenda.carried_points``).

Nobody is named in link mode (the token alone opens an agenda), so there
the page only explains how agendas are opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from syncd import agenda, people
from syncd.people import Named
from syncd.store import transaction
from syncd.store.models import ActionItem, Meeting, Pair
from syncd.web.identity import Viewer
from syncd.web.service import ItemView, MeetingRef, PointView, item_view, meeting_ref, point_view

#: Open points shown per upcoming 1:1; the rest are counted ("and 3 more").
POINTS_SHOWN = 5


@dataclass(frozen=True)
class Upcoming:
    """One pair's next meeting, as the home page lists it."""

    meeting: MeetingRef
    other: str  # the other person of the pair
    pair_token: str
    points: list[PointView]  # its open talking points people added, carried ones first
    more_points: int  # open points beyond ``points``
    prompts: int  # open prompts from the template (listed on the meeting's page only)


@dataclass(frozen=True)
class HomeView:
    viewer: Viewer
    upcoming: list[Upcoming]  # soonest first
    mine: list[ItemView]  # open items I own, by due date (overdue first), undated last
    owed: list[ItemView]  # open items the other person of one of my pairs owns
    others: dict[int, str]  # an item's id -> the other person of its pair
    named: dict[str, Named] = field(default_factory=dict)


def _by_due(item: ItemView) -> tuple[bool, date, datetime]:
    return (item.due is None, item.due or date.max, item.origin.start)


def home(
    factory: sessionmaker[Session], viewer: Viewer, now: datetime, *, carry_points: bool = True
) -> HomeView:
    """What ``viewer`` sees on ``/``: nothing but the viewer when nobody is named."""
    me = viewer.address
    if me is None:
        return HomeView(viewer, [], [], [], {})
    with transaction(factory) as session:
        pairs = list(
            session.scalars(select(Pair).where(or_(Pair.person_a == me, Pair.person_b == me)))
        )
        other = {pair.id: pair.person_b if pair.person_a == me else pair.person_a for pair in pairs}
        upcoming: list[Upcoming] = []
        for pair in pairs:
            meeting = agenda.next_meeting(session, pair.id, now)
            if meeting is None:
                continue
            carried = agenda.carried_points(session, meeting, now) if carry_points else []
            points = [point_view(p, m) for p, m in carried if not p.done]
            own = [p for p in meeting.talking_points if not p.done]
            points += [point_view(p) for p in own if p.author]
            upcoming.append(
                Upcoming(
                    meeting_ref(meeting),
                    other[pair.id],
                    pair.token,
                    points[:POINTS_SHOWN],
                    max(0, len(points) - POINTS_SHOWN),
                    sum(1 for p in own if not p.author),
                )
            )
        upcoming.sort(key=lambda u: u.meeting.start)
        rows = session.execute(
            select(ActionItem, Meeting)
            .join(Meeting, Meeting.id == ActionItem.meeting_id)
            .where(Meeting.pair_id.in_(list(other)), ActionItem.done.is_(False))
        ).all()
        mine: list[ItemView] = []
        owed: list[ItemView] = []
        others: dict[int, str] = {}
        for item, meeting in rows:
            view = item_view(item, meeting)
            others[item.id] = other[meeting.pair_id]
            (mine if item.owner == me else owed).append(view)
        named = people.lookup(session, [me, *other.values()])
        return HomeView(
            viewer, upcoming, sorted(mine, key=_by_due), sorted(owed, key=_by_due), others, named
        )
