"""What the pages and the API do, once: read an agenda for a viewer, apply an edit.

Every function opens its own transaction, checks access the same way (an
unknown token and a agenda that is not the viewer's are the same
``NotFound``), calls the domain in ``syncd.agenda``, and after an edit
marks every calendar that carries an organizer copy of the pair's meetings
due (``push.mark_due``), so the next invite's block follows within a tick.
Views are plain frozen dataclasses: nothing lazy escapes the session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from syncd import agenda, people, push
from syncd.health import WriteHealth
from syncd.people import Named
from syncd.store import transaction
from syncd.store.models import (
    ActionItem,
    Meeting,
    Note,
    Pair,
    TalkingPoint,
    WriteLog,
)
from syncd.web.identity import Access, Viewer, access, canonical
from syncd.web.settings import WebSettings

log = logging.getLogger(__name__)

MAX_TEXT = 200_000  # characters in one talking point, item or note
MAX_TOKEN = 64
#: The largest id a row can have (INTEGER on PostgreSQL): a larger one in a path is
#: nobody's item, not a database overflow.
MAX_ID = 2**31 - 1


class NotFound(Exception):
    """No such agenda, or not the viewer's: the same answer for both."""


class Forbidden(Exception):
    """The viewer may look but not do this (an admin editing, a private note in link mode)."""


class Invalid(ValueError):
    """The request itself is wrong (empty text, unknown owner, bad date...)."""


class Unavailable(Exception):
    """The database refused the edit (locked, disk full, read-only): nothing was saved.

    Not the person's fault and not a bug: the page keeps what they typed and
    the API says when to try again.
    """

    #: Seconds a page and the API ask a client to wait before trying again.
    retry_after = 5


@dataclass(frozen=True)
class MeetingRef:
    token: str
    title: str
    start: datetime
    end: datetime
    cancelled: bool


@dataclass(frozen=True)
class PointView:
    id: int
    text: str
    author: str
    done: bool
    #: when carried over: the start of the earlier meeting it was raised in
    origin: datetime | None = None


@dataclass(frozen=True)
class ItemView:
    id: int
    text: str
    owner: str
    author: str
    due: date | None
    done: bool
    done_at: datetime | None
    origin: MeetingRef


@dataclass(frozen=True)
class NoteView:
    body: str
    updated_at: datetime | None


@dataclass(frozen=True)
class MeetingView:
    meeting: MeetingRef
    people: tuple[str, str]
    pair_token: str
    points: list[PointView]
    items: list[ItemView]
    carried: list[ItemView]  # open items of every earlier meeting of the pair
    shared_note: NoteView
    private_note: NoteView | None  # None: the viewer has no private notes
    previous: MeetingRef | None
    next: MeetingRef | None
    access: Access
    #: When syncd last wrote this meeting's block into the invite (None: not yet).
    #: Where a write mails the attendees, the invite is refreshed on a few
    #: occasions only (``syncd.budget``); the page is always current.
    invite_updated_at: datetime | None = None
    #: talking points of earlier meetings this one lists (``agenda.carried_points``)
    carried_points: list[PointView] = field(default_factory=list)
    state: State = "later"
    #: the two people as calendars and the directory name them
    named: dict[str, Named] = field(default_factory=dict)
    #: which of the two manages the other, when the directory says so
    manager: str | None = None


@dataclass(frozen=True)
class PairMeeting:
    meeting: MeetingRef
    points: list[PointView]
    items: list[ItemView]
    shared_note: str
    private_note: str | None
    state: State = "later"

    @property
    def empty(self) -> bool:
        """Nothing anyone wrote: at most the template's prompts, which every meeting has."""
        authored = any(point.author for point in self.points)
        return not (authored or self.items or self.shared_note or self.private_note)


@dataclass(frozen=True)
class PairView:
    people: tuple[str, str]
    pair_token: str
    open_items: list[ItemView]
    meetings: list[PairMeeting]  # newest first
    query: str
    access: Access
    #: later meetings with nothing on their agendas yet, soonest first: listed in one line
    later_empty: list[MeetingRef] = field(default_factory=list)
    named: dict[str, Named] = field(default_factory=dict)
    manager: str | None = None


#: What a meeting is to the people looking at it now (``meeting_state``): "cancelled",
#: "ended", "in progress", "next" or "later".
State = str


def meeting_state(meeting: MeetingRef, now: datetime, next_token: str | None) -> State:
    """Where a meeting stands: a past agenda must not look like an upcoming one.

    "next" is the pair's next meeting (``agenda.next_meeting``), the one that
    carried points and items go to; "later" is any meeting after it.
    """
    if meeting.cancelled:
        return "cancelled"
    if meeting.end <= now:
        return "ended"
    if meeting.start <= now:
        return "in progress"
    return "next" if meeting.token == next_token else "later"


def meeting_ref(meeting: Meeting) -> MeetingRef:
    return MeetingRef(meeting.token, meeting.title, meeting.start, meeting.end, meeting.cancelled)


def point_view(point: TalkingPoint, origin: Meeting | None = None) -> PointView:
    started = origin.start if origin is not None else None
    return PointView(point.id, point.text, point.author, point.done, started)


def item_view(item: ActionItem, origin: Meeting) -> ItemView:
    return ItemView(
        item.id,
        item.text,
        item.owner,
        item.author,
        item.due,
        item.done,
        item.done_at,
        meeting_ref(origin),
    )


def text_field(value: object, name: str, *, required: bool = True) -> str:
    """A person's text, kept exactly as given (no trimming, no markup stripping)."""
    if not isinstance(value, str):
        raise Invalid(f"{name} must be text")
    if required and not value.strip():
        raise Invalid(f"{name} must not be empty")
    if len(value) > MAX_TEXT:
        raise Invalid(f"{name} is longer than {MAX_TEXT} characters")
    if "\x00" in value:
        raise Invalid(f"{name} must not contain NUL characters")
    try:
        value.encode("utf-8")  # JSON can carry a lone surrogate ("\\ud800"); no database can
    except UnicodeEncodeError:
        raise Invalid(f"{name} is not valid Unicode text") from None
    return value


def due_field(value: object) -> date | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Invalid("due must be a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid("due must be a date (YYYY-MM-DD)") from None


class Agendas:
    #: How long an edit waits for a row lock (PostgreSQL) before it is refused.
    lock_wait_seconds = 10.0

    def __init__(
        self,
        factory: sessionmaker[Session],
        clock: Callable[[], datetime],
        settings: WebSettings,
        writes: WriteHealth | None = None,
        *,
        on_mark: Callable[[float], None] | None = None,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.settings = settings
        self.writes = writes or WriteHealth()
        self.on_mark = on_mark

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """One edit's transaction; a database that refuses it raises ``Unavailable``."""
        try:
            with transaction(self.factory) as session:
                if session.get_bind().dialect.name == "postgresql":
                    # A row another transaction holds must not keep a person waiting for
                    # ever: give up after as long as SQLite's busy timeout would.
                    milliseconds = int(self.lock_wait_seconds * 1000)
                    session.execute(text(f"SET LOCAL lock_timeout = {milliseconds}"))
                yield session
        except (OperationalError, InterfaceError) as error:
            self.writes.refused()
            reason = str(error.orig).splitlines()[0] if str(error.orig) else type(error).__name__
            log.warning("an edit was refused by the database: %s", reason)
            raise Unavailable from None
        self.writes.accepted()
        if self.on_mark is not None:  # every edit marks the pair's calendars (_edited)
            self.on_mark(push.DEBOUNCE.total_seconds())

    # -- access ----------------------------------------------------------------

    def _open(self, session: Session, token: str, viewer: Viewer) -> tuple[Meeting, Access]:
        meeting = agenda.meeting_by_token(session, token) if len(token) <= MAX_TOKEN else None
        if meeting is None:
            raise NotFound
        allowed = access(viewer, agenda.participants(meeting), self.settings)
        if allowed is None:
            raise NotFound
        return meeting, allowed

    @staticmethod
    def _actor(allowed: Access) -> str:
        if allowed.actor is None:
            raise Forbidden("you may read this agenda but not edit it")
        return allowed.actor

    @staticmethod
    def _point_of(session: Session, meeting: Meeting, point_id: int) -> TalkingPoint:
        """A talking point of this very meeting (each meeting has its own points)."""
        point = session.get(TalkingPoint, point_id) if 0 <= point_id <= MAX_ID else None
        if point is None or point.meeting_id != meeting.id:
            raise NotFound
        return point

    def _point_shown(self, session: Session, meeting: Meeting, point_id: int) -> TalkingPoint:
        """A point of this meeting, or one of an earlier meeting that it lists (carried)."""
        try:
            return self._point_of(session, meeting, point_id)
        except NotFound:
            carried = {point.id: point for point, _ in self._carried(session, meeting)}
            if point_id not in carried:
                raise
            return carried[point_id]

    def _carried(
        self,
        session: Session,
        meeting: Meeting,
        now: datetime | None = None,
        upcoming: Meeting | None | agenda.Keep = agenda.KEEP,
    ) -> list[tuple[TalkingPoint, Meeting]]:
        if not self.settings.carry_talking_points:
            return []
        when = self.clock() if now is None else now
        return agenda.carried_points(session, meeting, when, upcoming=upcoming)

    @staticmethod
    def _item_of(session: Session, meeting: Meeting, item_id: int) -> ActionItem:
        """An action item of this meeting or of any other one of the pair (carried over)."""
        item = session.get(ActionItem, item_id) if 0 <= item_id <= MAX_ID else None
        if item is None or item.meeting.pair_id != meeting.pair_id:
            raise NotFound
        return item

    def _edited(self, session: Session, pair_id: int, now: datetime) -> None:
        push.mark_pair_due(session, pair_id, now)

    # -- reading ---------------------------------------------------------------

    def meeting(self, token: str, viewer: Viewer) -> MeetingView:
        with transaction(self.factory) as session:
            meeting, allowed = self._open(session, token, viewer)
            notes = {
                (note.private, note.author): note
                for note in agenda.notes_visible_to(session, meeting, allowed.note_owner or "")
            }
            shared = notes.get((False, ""))
            private: NoteView | None = None
            if allowed.note_owner is not None:
                mine = notes.get((True, allowed.note_owner))
                private = NoteView(mine.body, mine.updated_at) if mine else NoteView("", None)
            same_pair = Meeting.pair_id == meeting.pair_id
            previous = session.scalars(
                select(Meeting)
                .where(same_pair, Meeting.start < meeting.start)
                .order_by(Meeting.start.desc())
                .limit(1)
            ).first()
            following = session.scalars(
                select(Meeting)
                .where(same_pair, Meeting.start > meeting.start)
                .order_by(Meeting.start)
                .limit(1)
            ).first()
            now = self.clock()  # one instant for the state, the next meeting, what is carried
            upcoming = agenda.next_meeting(session, meeting.pair_id, now)
            ref = meeting_ref(meeting)
            two = agenda.participants(meeting)
            named = people.lookup(session, two)
            return MeetingView(
                named=named,
                manager=people.manager_in(two, named),
                meeting=ref,
                state=meeting_state(ref, now, upcoming.token if upcoming else None),
                people=two,
                pair_token=meeting.pair.token,
                points=[point_view(point) for point in meeting.talking_points],
                items=[item_view(item, meeting) for item in meeting.action_items],
                carried=[item_view(i, m) for i, m in agenda.open_action_items(session, meeting)],
                shared_note=NoteView(shared.body, shared.updated_at)
                if shared
                else NoteView("", None),
                private_note=private,
                previous=meeting_ref(previous) if previous else None,
                next=meeting_ref(following) if following else None,
                access=allowed,
                carried_points=[
                    point_view(p, m) for p, m in self._carried(session, meeting, now, upcoming)
                ],
                invite_updated_at=session.scalar(
                    select(func.max(WriteLog.at)).where(
                        WriteLog.meeting_id == meeting.id, WriteLog.outcome == "written"
                    )
                ),
            )

    def pair(
        self,
        token: str,
        viewer: Viewer,
        query: str = "",
        *,
        private_notes: bool = True,
        collapse_later: bool = False,
    ) -> PairView:
        """The pair's history, newest first; with ``query``, only what matches it.

        ``private_notes=False`` leaves out even the viewer's own private notes
        (exports carry none at all). ``collapse_later`` moves meetings after the
        next one that nobody wrote anything in to ``later_empty`` (the page).
        """
        with transaction(self.factory) as session:
            pair = (
                session.scalars(select(Pair).where(Pair.token == token)).one_or_none()
                if len(token) <= MAX_TOKEN
                else None
            )
            if pair is None:
                raise NotFound
            allowed = access(viewer, (pair.person_a, pair.person_b), self.settings)
            if allowed is None:
                raise NotFound
            owner = allowed.note_owner if private_notes else None
            meetings = list(
                session.scalars(
                    select(Meeting).where(Meeting.pair_id == pair.id).order_by(Meeting.start.desc())
                )
            )
            ids = [meeting.id for meeting in meetings]
            shared: dict[int, str] = {}
            private: dict[int, str] = {}
            if ids:
                for row in session.scalars(select(Note).where(Note.meeting_id.in_(ids))):
                    if not row.private:
                        shared[row.meeting_id] = row.body
                    elif owner is not None and row.author == owner:
                        private[row.meeting_id] = row.body
            needle = query.casefold()

            def hit(text: str) -> bool:
                return not needle or needle in text.casefold()

            now = self.clock()
            upcoming = agenda.next_meeting(session, pair.id, now)
            next_token = upcoming.token if upcoming else None
            history: list[PairMeeting] = []
            later_empty: list[MeetingRef] = []
            for meeting in meetings:
                points = [point_view(p) for p in meeting.talking_points if hit(p.text)]
                items = [item_view(i, meeting) for i in meeting.action_items if hit(i.text)]
                note = shared.get(meeting.id, "")
                if needle and not (points or items or hit(note)):
                    continue
                # The viewer's own private note, outside search results (not searched).
                mine = private.get(meeting.id, "") if owner is not None and not needle else None
                ref = meeting_ref(meeting)
                state = meeting_state(ref, now, next_token)
                shown = PairMeeting(ref, points, items, note, mine, state)
                if collapse_later and state == "later" and shown.empty and not needle:
                    later_empty.append(ref)  # four empty future meetings say nothing
                    continue
                history.append(shown)
            open_items = [
                item_view(item, meeting)
                for meeting in reversed(meetings)
                for item in meeting.action_items
                if not item.done and hit(item.text)
            ]
            two = (pair.person_a, pair.person_b)
            named = people.lookup(session, two)
            return PairView(
                named=named,
                manager=people.manager_in(two, named),
                people=two,
                pair_token=pair.token,
                open_items=open_items,
                meetings=history,
                query=query,
                access=allowed,
                later_empty=sorted(later_empty, key=lambda ref: ref.start),
            )

    # -- editing ---------------------------------------------------------------

    def add_talking_point(self, token: str, viewer: Viewer, text: str) -> PointView:
        text = text_field(text, "text")
        now = self.clock()
        with self._writing() as session:
            meeting, allowed = self._open(session, token, viewer)
            point = agenda.add_talking_point(session, meeting, text, self._actor(allowed), now)
            self._edited(session, meeting.pair_id, now)
            return point_view(point)

    def set_talking_point_done(
        self, token: str, viewer: Viewer, point_id: int, done: bool
    ) -> PointView:
        now = self.clock()
        with self._writing() as session:
            meeting, allowed = self._open(session, token, viewer)
            point = self._point_shown(session, meeting, point_id)
            agenda.set_talking_point_done(
                session, point, self._actor(allowed), done, now=now, covered_in=meeting
            )
            self._edited(session, meeting.pair_id, now)
            return point_view(point)

    def move_talking_point(
        self,
        token: str,
        viewer: Viewer,
        point_id: int,
        offset: object = None,
        position: object = None,
    ) -> list[PointView]:
        """One step up or down (``offset``), or to ``position`` (0 = first): a drag.

        The meeting's points in their new order.
        """
        if (offset is None) == (position is None):
            raise Invalid("give offset (-1 up, 1 down) or position (0 = first)")
        if offset is not None and (isinstance(offset, bool) or offset not in (-1, 1)):
            raise Invalid("offset must be -1 (up) or 1 (down)")
        if position is not None and (
            isinstance(position, bool)
            or not isinstance(position, int)
            or not 0 <= position < 10_000
        ):
            raise Invalid("position must be a whole number from 0 (first)")
        now = self.clock()
        with self._writing() as session:
            meeting, allowed = self._open(session, token, viewer)
            point = self._point_of(session, meeting, point_id)
            if isinstance(offset, int):
                agenda.move_talking_point(session, point, self._actor(allowed), offset)
            else:
                assert isinstance(position, int)
                agenda.place_talking_point(session, point, self._actor(allowed), position)
            self._edited(session, meeting.pair_id, now)
            return [point_view(each) for each in meeting.talking_points]

    def deletable(self, token: str, viewer: Viewer, kind: str, ident: int) -> str:
        """The text of what a delete would remove, if the viewer may delete it (to confirm)."""
        with transaction(self.factory) as session:
            meeting, allowed = self._open(session, token, viewer)
            self._actor(allowed)
            if kind == "talking point":
                return self._point_of(session, meeting, ident).text
            return self._item_of(session, meeting, ident).text

    def check(self, token: str, viewer: Viewer) -> None:
        """``NotFound`` unless the viewer may open this meeting."""
        with transaction(self.factory) as session:
            self._open(session, token, viewer)

    def add_action_item(
        self, token: str, viewer: Viewer, text: str, owner: str, due: date | None
    ) -> ItemView:
        text = text_field(text, "text")
        now = self.clock()
        with self._writing() as session:
            meeting, allowed = self._open(session, token, viewer)
            actor = self._actor(allowed)
            owner = canonical(owner) if isinstance(owner, str) else ""
            if owner not in agenda.participants(meeting):
                raise Invalid("owner must be one of the two people")
            item = agenda.add_action_item(
                session, meeting, text, owner=owner, author=actor, now=now, due=due
            )
            self._edited(session, meeting.pair_id, now)
            return item_view(item, meeting)

    def set_action_item_done(
        self, token: str, viewer: Viewer, item_id: int, done: bool
    ) -> ItemView:
        """An item of this meeting or of any earlier one of the pair (carried over)."""
        now = self.clock()
        with self._writing() as session:
            meeting, allowed = self._open(session, token, viewer)
            item = self._item_of(session, meeting, item_id)
            agenda.set_action_item_done(session, item, self._actor(allowed), now, done)
            self._edited(session, meeting.pair_id, now)
            return item_view(item, item.meeting)

    def edit_talking_point(
        self,
        token: str,
        viewer: Viewer,
        point_id: int,
        *,
        text: str | None = None,
        done: bool | None = None,
    ) -> PointView:
        """Change what is given, in one transaction; a point of a past meeting too."""
        if text is not None:
            text = text_field(text, "text")
        if text is None and done is None:
            raise Invalid("nothing to change: give text or done")
        now = self.clock()
        with self._writing() as session:
            meeting, allowed = self._open(session, token, viewer)
            actor = self._actor(allowed)
            point = self._point_of(session, meeting, point_id)
            if text is not None:
                agenda.edit_talking_point(session, point, actor, text)
            if done is not None:
                agenda.set_talking_point_done(session, point, actor, done, now=now)
            self._edited(session, meeting.pair_id, now)
            return point_view(point)

    def delete_talking_point(self, token: str, viewer: Viewer, point_id: int) -> None:
        now = self.clock()
        with self._writing() as session:
            meeting, allowed = self._open(session, token, viewer)
            point = self._point_of(session, meeting, point_id)
            agenda.delete_talking_point(session, point, self._actor(allowed))
            self._edited(session, meeting.pair_id, now)

    def edit_action_item(
        self,
        token: str,
        viewer: Viewer,
        item_id: int,
        *,
        text: str | None = None,
        owner: str | None = None,
        due: date | None | agenda.Keep = agenda.KEEP,
        done: bool | None = None,
    ) -> ItemView:
        """Change what is given, in one transaction; ``due=None`` clears the due date.

        Carried-over items (of earlier meetings of the pair) are edited through
        any later meeting's page, as they are closed there.
        """
        if text is not None:
            text = text_field(text, "text")
        if text is None and owner is None and isinstance(due, agenda.Keep) and done is None:
            raise Invalid("nothing to change: give text, owner, due or done")
        now = self.clock()
        with self._writing() as session:
            meeting, allowed = self._open(session, token, viewer)
            actor = self._actor(allowed)
            item = self._item_of(session, meeting, item_id)
            if owner is not None:
                owner = canonical(owner)
                if owner not in agenda.participants(meeting):
                    raise Invalid("owner must be one of the two people")
            agenda.edit_action_item(session, item, actor, text=text, owner=owner, due=due)
            if done is not None:
                agenda.set_action_item_done(session, item, actor, now, done)
            self._edited(session, meeting.pair_id, now)
            return item_view(item, item.meeting)

    def delete_action_item(self, token: str, viewer: Viewer, item_id: int) -> None:
        now = self.clock()
        with self._writing() as session:
            meeting, allowed = self._open(session, token, viewer)
            item = self._item_of(session, meeting, item_id)
            agenda.delete_action_item(session, item, self._actor(allowed))
            self._edited(session, meeting.pair_id, now)

    def save_note(self, token: str, viewer: Viewer, body: str, *, private: bool) -> NoteView:
        body = text_field(body, "body", required=False)
        now = self.clock()
        with self._writing() as session:
            meeting, allowed = self._open(session, token, viewer)
            actor = self._actor(allowed)
            if private and not allowed.private_notes:
                raise Forbidden("private notes are off: this server cannot tell who you are")
            note = agenda.save_note(session, meeting, actor, body, private=private, now=now)
            self._edited(session, meeting.pair_id, now)
            return NoteView(note.body, note.updated_at)
