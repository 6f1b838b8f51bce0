"""Push subscriptions: open, renew and stop them, and judge incoming notifications.

A notification only ever marks its calendar due; the scheduler does the sync.
A provider's notification is due at once when the calendar has not synced
within ``DEBOUNCE`` (the leading edge: a person who just scheduled a 1:1 sees
its link in seconds), else at the end of that interval, so a burst still
costs at most one sync per ``DEBOUNCE``. An agenda edit always waits the
``DEBOUNCE``: people type in bursts.
Polling keeps running underneath, so a lost notification costs latency,
never correctness.

Each channel gets a fresh random token that the provider echoes with every
notification. Only its SHA-256 digest is stored, and digests are compared in
constant time: a leaked database does not let anyone forge notifications, and
response timing says nothing about the token.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from providers.base import Channel, Notification, Watchable
from syncd.store import transaction
from syncd.store.models import Calendar, Occurrence, PushChannel

DEBOUNCE = timedelta(seconds=2)
RENEW_MARGIN = timedelta(hours=12)


class Outcome(enum.StrEnum):
    UNKNOWN = "unknown"  # not ours, stale, or a wrong token: dropped, same answer for all
    HANDSHAKE = "handshake"  # the channel's first message
    DUE = "due"  # the calendar is marked for a sync
    RENEW = "renew"  # the subscription itself needs replacing (and the calendar a sync)


@dataclass(frozen=True, slots=True)
class Heard:
    """What a notification did, and when its calendar is now due (if it marked one)."""

    outcome: Outcome
    due: datetime | None = None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_channel(
    factory: sessionmaker[Session],
    provider: Watchable,
    calendar_id: int,
    address: str,
    webhook_url: str,
    ttl: timedelta,
    now: datetime,
) -> Channel:
    """Record the channel, then ask for it: its first message may beat the answer."""
    token = secrets.token_urlsafe(32)
    channel_id = str(uuid.uuid4())
    with transaction(factory) as session:
        session.add(
            PushChannel(
                calendar_id=calendar_id,
                channel_id=channel_id,
                resource_id="",
                token_digest=digest(token),
                expires=now + ttl,
                created_at=now,
            )
        )
    try:
        channel = provider.watch(address, webhook_url, channel_id, token, ttl)
    except BaseException:
        _forget(factory, channel_id)
        raise
    with transaction(factory) as session:
        row = session.scalars(select(PushChannel).where(PushChannel.channel_id == channel_id)).one()
        row.channel_id, row.resource_id, row.expires = (
            channel.id,
            channel.resource_id,
            channel.expires,
        )
    return channel


def _forget(factory: sessionmaker[Session], channel_id: str) -> None:
    with transaction(factory) as session:
        for row in session.scalars(select(PushChannel).where(PushChannel.channel_id == channel_id)):
            session.delete(row)
            # without it the calendar may poll sooner: the scheduler looks again
            session.get_one(Calendar, row.calendar_id).due_hint = None


def _channels(session: Session, calendar_id: int) -> list[PushChannel]:
    return list(session.scalars(select(PushChannel).where(PushChannel.calendar_id == calendar_id)))


def _as_channel(row: PushChannel, address: str) -> Channel:
    return Channel(
        id=row.channel_id, resource_id=row.resource_id, calendar=address, expires=row.expires
    )


def keep_open(
    factory: sessionmaker[Session],
    provider: Watchable,
    calendar_id: int,
    address: str,
    webhook_url: str,
    ttl: timedelta,
    now: datetime,
) -> Channel | None:
    """Make sure the calendar has a channel that lives past the renewal margin.

    A new channel is opened before the old one is stopped, so no change falls
    between the two. Returns the channel opened, if one was.
    """
    with transaction(factory) as session:
        rows = _channels(session, calendar_id)
        fresh = [row for row in rows if row.expires > now + RENEW_MARGIN]
        old = [_as_channel(row, address) for row in rows if row.expires <= now + RENEW_MARGIN]
    if fresh:
        return None
    channel = open_channel(factory, provider, calendar_id, address, webhook_url, ttl, now)
    for stale in old:
        stop_channel(factory, provider, stale)
    return channel


def stop_channel(factory: sessionmaker[Session], provider: Watchable, channel: Channel) -> None:
    provider.stop(channel)
    _forget(factory, channel.id)


def stop_all(
    factory: sessionmaker[Session], provider: Watchable, calendar_id: int, address: str
) -> None:
    """On removal of a calendar or a clean shutdown that was asked to stop channels."""
    with transaction(factory) as session:
        channels = [_as_channel(row, address) for row in _channels(session, calendar_id)]
    for channel in channels:
        stop_channel(factory, provider, channel)


def accept(session: Session, notification: Notification | None, now: datetime) -> Heard:
    """Judge one notification; mark its calendar due if it is a real change."""
    if notification is None:
        return Heard(Outcome.UNKNOWN)
    row = session.scalars(
        select(PushChannel).where(PushChannel.channel_id == notification.channel_id)
    ).one_or_none()
    # Compare digests even for an unknown channel, so timing does not tell them apart.
    expected = row.token_digest if row is not None else digest(secrets.token_urlsafe(32))
    genuine = hmac.compare_digest(digest(notification.token), expected)
    if row is None or not genuine or row.expires <= now:
        return Heard(Outcome.UNKNOWN)
    row.heard_at = now  # it works: trusted again to stretch the poll (syncd.scheduler)
    if notification.handshake:
        return Heard(Outcome.HANDSHAKE)
    outcome = Outcome.DUE
    if notification.lifecycle == "reauthorizationRequired":
        row.expires = now  # keep_open replaces it on its next round
        return Heard(Outcome.RENEW)
    if notification.lifecycle == "subscriptionRemoved":
        session.delete(row)  # gone at the provider: keep_open opens a new one
        outcome = Outcome.RENEW
    # "missed" and plain changes: something changed that we have not seen
    return Heard(outcome, mark_heard(session.get_one(Calendar, row.calendar_id), now))


def mark_pair_due(session: Session, pair_id: int, now: datetime) -> None:
    """After an agenda edit: mark every calendar with an organizer copy of the pair due.

    The engine re-plans a calendar's blocks only when its events changed,
    time moved one of its 1:1s, or it is marked, so every path that edits an
    agenda must come through here, in the edit's own transaction.
    """
    calendars = (
        select(Occurrence.calendar_id)
        .where(Occurrence.pair_id == pair_id, Occurrence.organizer_copy.is_(True))
        .distinct()
    )
    for calendar in session.scalars(select(Calendar).where(Calendar.id.in_(calendars))):
        mark_due(calendar, now)


def mark_heard(calendar: Calendar, now: datetime) -> datetime:
    """The provider says ``calendar`` changed: due now, unless it synced within ``DEBOUNCE``.

    While a sync holds the calendar's lease it may already have read past
    this change or not: the calendar is due again one ``DEBOUNCE`` later. A
    mark already due and not being synced stays as it is. After a recent sync
    (often our own write's echo) it is due when that interval ends. Returns
    the due time now set (never later than an earlier mark).
    """
    running = calendar.lease_until is not None and calendar.lease_until > now
    synced, mark = calendar.last_sync_at, calendar.next_sync_at
    if running:
        due = now + DEBOUNCE
    elif mark is not None and mark <= now:
        due = mark
    elif synced is not None and now < synced + DEBOUNCE:
        due = synced + DEBOUNCE
    else:
        due = now
    return _mark(calendar, now, due)


def mark_due(calendar: Calendar, now: datetime) -> datetime:
    """Ask for a sync of ``calendar`` in ``DEBOUNCE``: what an agenda edit does."""
    return _mark(calendar, now, now + DEBOUNCE)


def _mark(calendar: Calendar, now: datetime, due: datetime) -> datetime:
    """Set the mark to ``due`` unless an earlier one is pending; the mark now set.

    An earlier mark is never moved later (a burst of changes costs one sync).
    A mark already due may belong to a sync running now, which cannot have
    seen this change: move it, so that sync leaves the calendar due (its
    compare-and-clear no longer matches).

    ``pushed_at`` keeps the oldest change not yet synced, for the
    push-to-write lag; the sync that clears the mark clears it too.
    """
    mark = calendar.next_sync_at
    if mark is None or mark > due or mark <= now:
        calendar.next_sync_at = mark = due
    if calendar.due_hint is not None and calendar.due_hint > mark:
        calendar.due_hint = mark  # the scheduler's hint stays a lower bound
    if calendar.pushed_at is None:
        calendar.pushed_at = now
    return mark
