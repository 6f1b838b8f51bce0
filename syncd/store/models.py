"""The tables: agenda content, calendar sync state, and the write log.

Times are stored as timezone-aware UTC (``UtcDateTime``) so that SQLite and
PostgreSQL round-trip the same values. The schema is created and upgraded only
through the Alembic migrations in ``migrations/``; ``Base.metadata`` exists for
typing and for the test that checks the migrations match these models.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from providers.model import OccurrenceKey


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        moment = value.astimezone(UTC)
        # SQLite keeps no zone: store naive UTC there, aware elsewhere.
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Pair(Base):
    """Two people who meet 1:1, whatever calendar system carries their meetings."""

    __tablename__ = "pairs"
    __table_args__ = (UniqueConstraint("person_a", "person_b"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_a: Mapped[str] = mapped_column(String(320))
    person_b: Mapped[str] = mapped_column(String(320))
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    meetings: Mapped[list[Meeting]] = relationship(back_populates="pair")


class Meeting(Base):
    """One occurrence's agenda, keyed by iCalUID + original start."""

    __tablename__ = "meetings"
    __table_args__ = (
        UniqueConstraint("ical_uid", "original_start"),
        Index("ix_meetings_pair_start", "pair_id", "start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id"))
    ical_uid: Mapped[str] = mapped_column(String(1024))
    original_start: Mapped[datetime] = mapped_column(UtcDateTime)
    start: Mapped[datetime] = mapped_column(UtcDateTime)
    end: Mapped[datetime] = mapped_column(UtcDateTime)
    title: Mapped[str] = mapped_column(Text, default="")
    token: Mapped[str] = mapped_column(String(64), unique=True)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    pair: Mapped[Pair] = relationship(back_populates="meetings")
    talking_points: Mapped[list[TalkingPoint]] = relationship(
        back_populates="meeting",
        order_by="TalkingPoint.position",
        foreign_keys="TalkingPoint.meeting_id",
    )
    action_items: Mapped[list[ActionItem]] = relationship(
        back_populates="meeting", order_by="ActionItem.id"
    )


class TalkingPoint(Base):
    __tablename__ = "talking_points"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(320))
    position: Mapped[int] = mapped_column(Integer)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    #: the later meeting it was checked off in, when it was carried over into one
    closed_in_id: Mapped[int | None] = mapped_column(
        ForeignKey("meetings.id", name="fk_talking_points_closed_in"), nullable=True, index=True
    )

    meeting: Mapped[Meeting] = relationship(
        back_populates="talking_points", foreign_keys=[meeting_id]
    )


class ActionItem(Base):
    __tablename__ = "action_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(320))
    author: Mapped[str] = mapped_column(String(320))
    due: Mapped[date | None] = mapped_column(Date, nullable=True)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    meeting: Mapped[Meeting] = relationship(back_populates="action_items")


class Note(Base):
    """Shared notes (author "", one per meeting) and private notes (one per author)."""

    __tablename__ = "notes"
    __table_args__ = (UniqueConstraint("meeting_id", "author", "private"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id"), index=True)
    author: Mapped[str] = mapped_column(String(320))
    private: Mapped[bool] = mapped_column(Boolean)
    body: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Calendar(Base):
    """Sync state of one watched calendar: cursor, schedule, health."""

    __tablename__ = "calendars"
    __table_args__ = (
        UniqueConstraint("account", "address"),
        # a claim reads the marked calendars, then those whose hint has come
        Index("ix_calendars_account_due_hint", "account", "due_hint"),
        Index("ix_calendars_account_next_sync_at", "account", "next_sync_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(40))
    address: Mapped[str] = mapped_column(String(320))
    cursor: Mapped[str | None] = mapped_column(Text, nullable=True)
    cursor_version: Mapped[int] = mapped_column(Integer, default=0)
    cursor_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_sync_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    next_sync_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # when the oldest change heard of (webhook, agenda edit) and not yet synced
    # arrived: the start of the push-to-write lag
    pushed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    needs_reauth: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # when a block rewrite the mail budget deferred falls due (syncd.budget)
    wake_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # the earliest it can next be due, kept by syncd.scheduler; NULL: look at it
    due_hint: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Occurrence(Base):
    """The engine's mirror of one event copy it has seen in one calendar.

    Series masters are kept (``is_master``) so their occurrences can be
    re-expanded as the horizon moves forward without a provider change. The
    mirror is what lets a sync decide, without re-reading every event, which
    occurrences are in the horizon and whether their block is current.
    """

    __tablename__ = "occurrences"
    __table_args__ = (
        UniqueConstraint("calendar_id", "event_id"),
        Index("ix_occurrences_key", "ical_uid", "original_start"),
        Index("ix_occurrences_series", "calendar_id", "series_id"),
        # the scheduler asks every calendar, every second, "did a 1:1 end since your sync?"
        Index("ix_occurrences_calendar_end", "calendar_id", "end"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendars.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(1024))
    series_id: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    is_master: Mapped[bool] = mapped_column(Boolean, default=False)
    ical_uid: Mapped[str] = mapped_column(String(1024))
    original_start: Mapped[datetime] = mapped_column(UtcDateTime)
    start: Mapped[datetime] = mapped_column(UtcDateTime)
    end: Mapped[datetime] = mapped_column(UtcDateTime)
    title: Mapped[str] = mapped_column(Text, default="")
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    organizer_copy: Mapped[bool] = mapped_column(Boolean, default=False)
    verdict: Mapped[str] = mapped_column(String(40))
    pair_id: Mapped[int | None] = mapped_column(ForeignKey("pairs.id"), nullable=True)
    etag: Mapped[str] = mapped_column(Text, default="")
    block_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    has_block: Mapped[bool] = mapped_column(Boolean, default=False)
    # the mail budget (syncd.budget): when syncd last wrote the block, and how
    # many pre-meeting refreshes it made
    block_written_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    refreshes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    expanded_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    @property
    def key(self) -> OccurrenceKey:
        """The occurrence this copy is of: what its agenda is keyed by."""
        return OccurrenceKey(self.ical_uid, self.original_start)


class Person(Base):
    """How a person is named, and who their manager is, as the calendar or directory says.

    Names come from the calendars (an attendee's display name) unless the
    directory gave one (``source = "directory"``), which then wins; the
    manager only from a directory that has the relation. Nothing here is
    needed to sync: a missing row is a person shown by address.
    """

    __tablename__ = "people"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    name: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(20), default="calendar")
    manager: Mapped[str | None] = mapped_column(String(320), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WriteLog(Base):
    """Every description write syncd attempted: what, where, and how it ended."""

    __tablename__ = "write_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendars.id"))
    event_id: Mapped[str] = mapped_column(String(1024))
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meetings.id"), nullable=True)
    etag_before: Mapped[str] = mapped_column(Text, default="")
    etag_after: Mapped[str | None] = mapped_column(Text, nullable=True)
    block_digest: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(40))


class PushChannel(Base):
    """A live push subscription on one calendar; its secret is kept only as a digest."""

    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendars.id"), index=True)
    channel_id: Mapped[str] = mapped_column(String(200), unique=True)
    resource_id: Mapped[str] = mapped_column(Text)
    token_digest: Mapped[str] = mapped_column(String(64))
    expires: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # its health (syncd.scheduler): the last genuine notification, and the last
    # poll that found a change this channel never announced
    heard_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    missed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
