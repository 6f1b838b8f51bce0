"""Pairs, meetings, talking points, action items and carry-over.

Identity rules, and why:

* A **pair** is the two people, as canonical (case-folded, alias-mapped)
  addresses in sorted order. Not the series, not the calendar: so the pair's
  history survives a series being edited or replaced, an ad-hoc meeting on the
  side, and a move from Google to Outlook.
* A **meeting** is one occurrence, keyed by iCalUID + original start, so a
  moved occurrence keeps its agenda and every calendar copy finds the same one.
* Each meeting and pair has its own token with 192 random bits: the token is
  the only thing in the invite, and it must not be guessable.

Carry-over is computed, never copied: the open action items of a meeting are
every not-done item of an earlier meeting of the same pair. The block written
into an invite shows only the items of earlier meetings that have already
ended, so edits made during a meeting do not churn the next invite; the
agenda page shows all of them.

Editing and deleting follow the same rule as adding: either of the two
people (or ``LINK_ACTOR``) may change or delete any talking point or action
item of their pair, whoever added it. Restricting deletion to an item's
author would protect nothing, since the other person could rewrite its text
anyway. Items of meetings that have already ended stay editable: an open
action item is carried into every later invite, so fixing its text, owner
or due date must reach the next block; the invite of the past meeting
itself is never rewritten (the engine writes only upcoming occurrences).

Everything here is a function of a SQLAlchemy session; the web app and the
engine call the same functions.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from providers.model import OccurrenceKey
from syncd import block, people
from syncd.store.models import ActionItem, Meeting, Note, Pair, TalkingPoint

TOKEN_BYTES = 24  # 192 bits; the design asks for at least 128


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


#: How a person is named where no name is known: the local part of their address.
display_name = people.short


def pair_for(session: Session, people: tuple[str, str], now: datetime) -> tuple[Pair, bool]:
    """The pair of these two canonical addresses, created if new; (pair, created)."""
    person_a, person_b = sorted(people)
    if person_a == person_b:
        raise ValueError("a pair needs two different people")
    pair = session.scalars(
        select(Pair).where(Pair.person_a == person_a, Pair.person_b == person_b)
    ).one_or_none()
    if pair is not None:
        return pair, False
    pair = Pair(person_a=person_a, person_b=person_b, token=new_token(), created_at=now)
    session.add(pair)
    session.flush()
    return pair, True


def find_meeting(session: Session, key: OccurrenceKey) -> Meeting | None:
    """The agenda of one occurrence, if it has one yet."""
    return session.scalars(
        select(Meeting).where(
            Meeting.ical_uid == key.ical_uid, Meeting.original_start == key.original_start
        )
    ).one_or_none()


@dataclass(frozen=True, slots=True)
class Invite:
    """What the organizer's invite says of its agenda: our tag's token and the block."""

    token: str
    block_text: str


def meeting_for(
    session: Session,
    pair: Pair,
    key: OccurrenceKey,
    *,
    start: datetime,
    end: datetime,
    title: str,
    cancelled: bool,
    template: Sequence[str],
    now: datetime,
    invite: Invite | None = None,
    zone: tzinfo = UTC,
) -> Meeting:
    """The agenda of one occurrence, created on first sight, kept current after.

    The first meeting a pair ever gets starts with the template's talking
    points, so a new 1:1 never opens on an empty page. An ``invite`` whose
    token no agenda holds means the database lost it: the meeting takes that
    token (every link in every invite keeps working) and its content is
    rebuilt from the block (``adopt``).
    """
    meeting = find_meeting(session, key)
    lost = invite is not None and (meeting is None or meeting.token != invite.token)
    if invite is not None and lost and meeting_by_token(session, invite.token) is None:
        return adopt(
            session, pair, key, meeting, invite, start=start, end=end, title=title,
            cancelled=cancelled, now=now, zone=zone,
        )  # fmt: skip
    if meeting is None:
        first_of_pair = (
            session.scalars(select(Meeting.id).where(Meeting.pair_id == pair.id).limit(1)).first()
            is None
        )
        meeting = _new_meeting(session, pair, key, new_token(), start, end, title, cancelled, now)
        if first_of_pair:
            for position, text in enumerate(template):
                session.add(
                    TalkingPoint(
                        meeting_id=meeting.id,
                        text=text,
                        author="",
                        position=position,
                        created_at=now,
                    )
                )
        return meeting
    meeting.pair_id = pair.id
    meeting.start, meeting.end, meeting.title, meeting.cancelled = start, end, title, cancelled
    return meeting


def adopt(
    session: Session,
    pair: Pair,
    key: OccurrenceKey,
    meeting: Meeting | None,
    invite: Invite,
    *,
    start: datetime,
    end: datetime,
    title: str,
    cancelled: bool,
    now: datetime,
    zone: tzinfo,
) -> Meeting:
    """Rebuild one meeting's agenda from its invite, under the invite's own token.

    What the block lists comes back: the open talking points with their
    authors, and the open action items of earlier meetings with owner and
    origin date (each on a meeting of the pair on that date, made if none is
    known: "recovered from the invites"). What no invite holds is gone: done
    points, notes, items of meetings not yet ended, anything past the
    block's "… and N more". A meeting already made for this occurrence (from
    an attendee's copy, before the organizer's was read) takes the token,
    and its content too while it is untouched.
    """
    shown = _shown(session, pair)
    listed = block.parse(invite.block_text, [*(n for ns in shown.values() for n in ns), LINK_ACTOR])
    if meeting is None:
        token = invite.token
        meeting = _new_meeting(session, pair, key, token, start, end, title, cancelled, now)
    else:
        meeting.token = invite.token
        meeting.pair_id = pair.id
        meeting.start, meeting.end, meeting.title, meeting.cancelled = start, end, title, cancelled
        if not _untouched(session, meeting):
            return meeting
        for point in list(meeting.talking_points):
            session.delete(point)
        session.flush()
    for position, (text, who) in enumerate(listed.talking_points):
        session.add(
            TalkingPoint(
                meeting_id=meeting.id,
                text=text,
                author=_person(shown, who) if who else "",
                position=position,
                created_at=now,
            )
        )
    for text, who, (month, day) in listed.carried_points:
        origin = _origin_meeting(session, pair, month, day, before=start, zone=zone, now=now)
        author = _person(shown, who)
        known = session.scalars(
            select(TalkingPoint.id).where(
                TalkingPoint.meeting_id == origin.id, TalkingPoint.text == text
            )
        ).first()
        if known is None:  # the point is still where it was raised; only its copy was lost
            session.add(
                TalkingPoint(
                    meeting_id=origin.id,
                    text=text,
                    author=author or LINK_ACTOR,
                    position=len(origin.talking_points),
                    created_at=now,
                )
            )
    for text, who, (month, day) in listed.action_items:
        origin = _origin_meeting(session, pair, month, day, before=start, zone=zone, now=now)
        owner = _person(shown, who) or pair.person_a
        duplicate = session.scalars(
            select(ActionItem.id).where(
                ActionItem.meeting_id == origin.id,
                ActionItem.text == text,
                ActionItem.owner == owner,
            )
        ).first()
        if duplicate is None:  # every later invite of the pair lists the same open item
            session.add(
                ActionItem(meeting_id=origin.id, text=text, owner=owner, author="", created_at=now)
            )
    session.flush()
    session.refresh(meeting)
    return meeting


RECOVERED_TITLE = "Recovered from the invites"


def _shown(session: Session, pair: Pair) -> dict[str, list[str]]:
    """The names a block shows (or showed) for each of the two: their name, when the
    calendars or the directory gave one, then their address's first part (what blocks
    said before names were known, and what they say without one)."""
    named = people.lookup(session, (pair.person_a, pair.person_b))
    shown: dict[str, list[str]] = {}
    for address, known in named.items():
        # parentheses would end the "(who, from …)" of a block line early
        name = known.name.replace("(", "").replace(")", "").strip()
        shown[address] = [name, display_name(address)] if name else [display_name(address)]
    return shown


def _person(shown: dict[str, list[str]], who: str) -> str:
    """The address behind a name as the block shows it; "" if it is neither person's."""
    for address, names in shown.items():
        if who in names:
            return address
    return LINK_ACTOR if who == LINK_ACTOR else ""


def _untouched(session: Session, meeting: Meeting) -> bool:
    """Nothing a person did: only template points, no items, no notes."""
    if any(point.author or point.done for point in meeting.talking_points):
        return False
    if meeting.action_items:
        return False
    return session.scalars(select(Note.id).where(Note.meeting_id == meeting.id)).first() is None


def _origin_meeting(
    session: Session, pair: Pair, month: int, day: int, *, before: datetime, zone: tzinfo,
    now: datetime,
) -> Meeting:  # fmt: skip
    """The pair's meeting on the latest (month, day) up to ``before``, made if none is known."""
    local = before.astimezone(zone)
    year = local.year if (month, day) <= (local.month, local.day) else local.year - 1
    try:
        midnight = datetime.combine(date(year, month, day), time(), tzinfo=zone)
    except ValueError:  # Feb 29 of a year that has none: the day before
        midnight = datetime.combine(date(year, month, 28), time(), tzinfo=zone)
    day_start, day_end = midnight.astimezone(UTC), (midnight + timedelta(days=1)).astimezone(UTC)
    known = session.scalars(
        select(Meeting)
        .where(Meeting.pair_id == pair.id, Meeting.start >= day_start, Meeting.start < day_end)
        .where(Meeting.start < before)
        .order_by(Meeting.start)
    ).first()
    if known is not None:
        return known
    key = OccurrenceKey(f"syncd-recovered-{pair.id}", day_start)
    token = new_token()
    return _new_meeting(
        session, pair, key, token, day_start, day_start, RECOVERED_TITLE, False, now
    )


def _new_meeting(
    session: Session,
    pair: Pair,
    key: OccurrenceKey,
    token: str,
    start: datetime,
    end: datetime,
    title: str,
    cancelled: bool,
    now: datetime,
) -> Meeting:
    meeting = Meeting(
        pair_id=pair.id,
        ical_uid=key.ical_uid,
        original_start=key.original_start,
        start=start,
        end=end,
        title=title,
        token=token,
        cancelled=cancelled,
        created_at=now,
    )
    session.add(meeting)
    session.flush()
    return meeting


def mark_cancelled(session: Session, key: OccurrenceKey) -> None:
    """A cancelled occurrence keeps its agenda (people may have written in it)."""
    meeting = find_meeting(session, key)
    if meeting is not None:
        meeting.cancelled = True


def earlier_meetings(session: Session, meeting: Meeting) -> list[Meeting]:
    return list(
        session.scalars(
            select(Meeting)
            .where(Meeting.pair_id == meeting.pair_id, Meeting.start < meeting.start)
            .order_by(Meeting.start)
        )
    )


def open_action_items(
    session: Session, meeting: Meeting, ended_by: datetime | None = None
) -> list[tuple[ActionItem, Meeting]]:
    """Every not-done item of an earlier meeting of the pair, with the meeting it came from.

    With ``ended_by``, only items of meetings that had ended by then: what an
    invite's block shows.
    """
    query = (
        select(ActionItem, Meeting)
        .join(Meeting, ActionItem.meeting_id == Meeting.id)
        .where(
            Meeting.pair_id == meeting.pair_id,
            Meeting.start < meeting.start,
            ActionItem.done.is_(False),
        )
        .order_by(Meeting.start, ActionItem.id)
    )
    if ended_by is not None:
        query = query.where(Meeting.end <= ended_by)
    return [(row[0], row[1]) for row in session.execute(query).all()]


def block_view(
    session: Session,
    meeting: Meeting,
    *,
    base_url: str,
    zone: tzinfo,
    now: datetime,
    carry: bool = True,
) -> block.BlockView:
    """What the invite of ``meeting`` should say right now (``carry``: talking points of
    ended meetings first, when it is the pair's next)."""
    shown = _shown(session, meeting.pair)

    def name(address: str) -> str:
        return shown.get(address, [display_name(address)])[0] if address else ""

    points = [
        block.TalkingPoint(
            text=point.text, author=name(point.author), origin=origin.start.astimezone(zone).date()
        )
        for point, origin in (carried_points(session, meeting, now) if carry else ())
        if not point.done
    ]
    points += [
        block.TalkingPoint(text=point.text, author=name(point.author))
        for point in meeting.talking_points
        if not point.done
    ]
    items = [
        block.ActionItem(
            text=item.text,
            owner=name(item.owner),
            origin=origin.start.astimezone(zone).date(),
        )
        for item, origin in open_action_items(session, meeting, ended_by=now)
    ]
    return block.BlockView(
        url=meeting_url(base_url, meeting),
        talking_points=points,
        action_items=items,
        own_items=sum(1 for item in meeting.action_items if not item.done),
    )


def meeting_url(base_url: str, meeting: Meeting) -> str:
    return f"{base_url.rstrip('/')}/m/{meeting.token}"


def participants(meeting: Meeting) -> tuple[str, str]:
    return meeting.pair.person_a, meeting.pair.person_b


# Who an edit is attributed to when the server cannot tell who made it: in the
# web app's ``link`` sign-in mode the token alone grants access. It has no "@",
# so it can never be mistaken for (or collide with) a person's address. It may
# add and check off items and write the shared note, never a private note.
LINK_ACTOR = "someone with the link"


def _require_participant(meeting: Meeting, person: str, *, link_allowed: bool = True) -> None:
    if link_allowed and person == LINK_ACTOR:
        return
    if person not in participants(meeting):
        raise PermissionError("only the two people of a 1:1 edit its agenda")


def add_talking_point(
    session: Session, meeting: Meeting, text: str, author: str, now: datetime
) -> TalkingPoint:
    _require_participant(meeting, author)
    position = max((point.position for point in meeting.talking_points), default=-1) + 1
    point = TalkingPoint(
        meeting_id=meeting.id, text=text, author=author, position=position, created_at=now
    )
    session.add(point)
    session.flush()
    session.refresh(meeting)
    return point


def set_talking_point_done(
    session: Session,
    point: TalkingPoint,
    person: str,
    done: bool = True,
    *,
    now: datetime | None = None,
    covered_in: Meeting | None = None,
) -> None:
    """Check a point off (or on again), in its own meeting or one it was carried into.

    There is one row whatever meeting shows it, so checked off anywhere it
    is closed everywhere; ``covered_in``, a later meeting, keeps saying it
    was covered there.
    """
    _require_participant(point.meeting, person)
    point.done = done
    point.done_at = now if done else None
    point.closed_in_id = None
    if done and covered_in is not None and covered_in.id != point.meeting_id:
        point.closed_in_id = covered_in.id
    session.flush()


class Keep(enum.Enum):
    """ "Leave this field as it is", for fields where ``None`` is a value (no due date)."""

    KEEP = "keep"


KEEP = Keep.KEEP


def next_meeting(session: Session, pair_id: int, now: datetime) -> Meeting | None:
    """The pair's meeting that comes next: the earliest not ended and not cancelled."""
    return session.scalars(
        select(Meeting)
        .where(Meeting.pair_id == pair_id, Meeting.end > now, Meeting.cancelled.is_(False))
        .order_by(Meeting.start, Meeting.id)
        .limit(1)
    ).first()


def carried_points(
    session: Session, meeting: Meeting, now: datetime, *, upcoming: Meeting | None | Keep = KEEP
) -> list[tuple[TalkingPoint, Meeting]]:
    """Talking points of earlier meetings that ``meeting`` shows, with the meeting of each.

    An unchecked point of a meeting that ended (or was cancelled) belongs to
    the pair's next meeting, and to no other: it is computed, never copied,
    so however many later meetings exist, whichever is postponed, skipped or
    cancelled, it is listed exactly once, and it moves on by itself when
    that meeting ends unchecked. Template prompts (no author) stay where
    they were asked. Points checked off in ``meeting`` stay listed there,
    done, so the meeting says what it covered.

    ``upcoming``: the pair's ``next_meeting`` at ``now``, when the caller has
    it already (``KEEP``, the default, looks it up).
    """
    origin = Meeting.id == TalkingPoint.meeting_id
    closed_here = [
        (row[0], row[1])
        for row in session.execute(
            select(TalkingPoint, Meeting)
            .join(Meeting, origin)
            .where(TalkingPoint.closed_in_id == meeting.id)
        )
    ]
    if isinstance(upcoming, Keep):
        upcoming = next_meeting(session, meeting.pair_id, now)
    still_open: list[tuple[TalkingPoint, Meeting]] = []
    if upcoming is not None and upcoming.id == meeting.id:
        still_open = [
            (row[0], row[1])
            for row in session.execute(
                select(TalkingPoint, Meeting)
                .join(Meeting, origin)
                .where(
                    Meeting.pair_id == meeting.pair_id,
                    Meeting.id != meeting.id,
                    Meeting.start < meeting.start,
                    (Meeting.end <= now) | Meeting.cancelled.is_(True),
                    TalkingPoint.done.is_(False),
                    TalkingPoint.author != "",
                )
            )
        ]
    both = closed_here + still_open
    both.sort(key=lambda pair: (pair[1].start, pair[0].position, pair[0].id))
    return both


def move_talking_point(session: Session, point: TalkingPoint, person: str, offset: int) -> None:
    """Swap ``point`` with its neighbour above (``offset=-1``) or below (``+1``).

    A no-op at either end. Positions are renumbered 0..n-1 on the way, so
    points that once shared a position (or left gaps) still move one step.
    """
    if offset not in (-1, 1):
        raise ValueError("a talking point moves one step: offset is -1 or 1")
    ordered = sorted(point.meeting.talking_points, key=lambda p: (p.position, p.id))
    place_talking_point(session, point, person, ordered.index(point) + offset)


def place_talking_point(session: Session, point: TalkingPoint, person: str, position: int) -> None:
    """Put ``point`` at ``position`` (0 = first) among its meeting's points: a drag and drop.

    A position past either end means that end. The others keep their order.
    """
    meeting = point.meeting
    _require_participant(meeting, person)
    ordered = sorted(meeting.talking_points, key=lambda p: (p.position, p.id))
    ordered.remove(point)
    ordered.insert(max(0, min(position, len(ordered))), point)
    for index, each in enumerate(ordered):
        each.position = index
    session.flush()
    session.expire(meeting, ["talking_points"])


def add_action_item(
    session: Session,
    meeting: Meeting,
    text: str,
    *,
    owner: str,
    author: str,
    now: datetime,
    due: date | None = None,
) -> ActionItem:
    _require_participant(meeting, author)
    if owner not in participants(meeting):
        raise ValueError("an action item's owner is one of the two people")
    item = ActionItem(
        meeting_id=meeting.id, text=text, owner=owner, author=author, due=due, created_at=now
    )
    session.add(item)
    session.flush()
    return item


def set_action_item_done(
    session: Session, item: ActionItem, person: str, now: datetime, done: bool = True
) -> None:
    _require_participant(item.meeting, person)
    item.done = done
    item.done_at = now if done else None
    session.flush()


def _require_text(text: str) -> None:
    if not text.strip():
        raise ValueError("an agenda item's text must not be empty")


def edit_talking_point(session: Session, point: TalkingPoint, person: str, text: str) -> None:
    """New wording for a point; its author stays who first raised it."""
    _require_participant(point.meeting, person)
    _require_text(text)
    point.text = text
    session.flush()


def edit_action_item(
    session: Session,
    item: ActionItem,
    person: str,
    *,
    text: str | None = None,
    owner: str | None = None,
    due: date | None | Keep = KEEP,
) -> None:
    """Change what is given and keep the rest; ``due=None`` clears the due date."""
    _require_participant(item.meeting, person)
    if text is not None:
        _require_text(text)
    if owner is not None and owner not in participants(item.meeting):
        raise ValueError("an action item's owner is one of the two people")
    if text is not None:
        item.text = text
    if owner is not None:
        item.owner = owner
    if not isinstance(due, Keep):
        item.due = due
    session.flush()


def delete_talking_point(session: Session, point: TalkingPoint, person: str) -> None:
    """Gone for good: a point added by mistake should not linger in the history."""
    meeting = point.meeting
    _require_participant(meeting, person)
    session.delete(point)
    session.flush()
    session.expire(meeting, ["talking_points"])


def delete_action_item(session: Session, item: ActionItem, person: str) -> None:
    """Gone for good, from this meeting and from every later invite's block."""
    meeting = item.meeting
    _require_participant(meeting, person)
    session.delete(item)
    session.flush()
    session.expire(meeting, ["action_items"])


def save_note(
    session: Session, meeting: Meeting, author: str, body: str, *, private: bool, now: datetime
) -> Note:
    """Shared notes are one document per meeting; private ones one per author.

    A private note needs a known author: ``LINK_ACTOR`` may not have one.
    """
    _require_participant(meeting, author, link_allowed=not private)
    owner = author if private else ""
    note = session.scalars(
        select(Note).where(
            Note.meeting_id == meeting.id, Note.author == owner, Note.private.is_(private)
        )
    ).one_or_none()
    if note is None:
        note = Note(meeting_id=meeting.id, author=owner, private=private, body=body, updated_at=now)
        session.add(note)
    else:
        note.body, note.updated_at = body, now
    session.flush()
    return note


def notes_visible_to(session: Session, meeting: Meeting, person: str) -> list[Note]:
    """The shared note and the person's own private note; never someone else's."""
    return list(
        session.scalars(
            select(Note).where(
                Note.meeting_id == meeting.id,
                (Note.private.is_(False)) | (Note.author == person),
            )
        )
    )


def meeting_by_token(session: Session, token: str) -> Meeting | None:
    return session.scalars(select(Meeting).where(Meeting.token == token)).one_or_none()
