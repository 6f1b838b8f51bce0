"""Which calendar syncs when.

A calendar is due when a push notification marked it (``next_sync_at``, a
couple of seconds out so a burst costs one sync), when a failure's backoff
has run out (``next_sync_at`` again), or when its poll interval has passed
since the last sync: polling holds even with push on, so a lost
notification only costs latency. A calendar waiting for re-authorisation is
never due.

This is the first cut: one process, calendars synced one after another.
Bounded concurrency, leases across workers, jitter and meeting-end triggers
build on ``due`` and ``tick``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from syncd.engine import CalendarSync, Report
from syncd.store import transaction
from syncd.store.models import Calendar

POLL_INTERVAL = timedelta(minutes=5)


def due(
    session: Session, now: datetime, poll_interval: timedelta = POLL_INTERVAL
) -> list[Calendar]:
    """The calendars to sync at ``now``, the longest-waiting first."""
    return list(
        session.scalars(
            select(Calendar)
            .where(
                Calendar.needs_reauth.is_(False),
                or_(
                    Calendar.next_sync_at <= now,
                    and_(
                        Calendar.next_sync_at.is_(None),
                        or_(
                            Calendar.last_sync_at.is_(None),
                            Calendar.last_sync_at <= now - poll_interval,
                        ),
                    ),
                ),
            )
            .order_by(Calendar.last_sync_at.is_not(None), Calendar.last_sync_at)
        )
    )


def tick(
    factory: sessionmaker[Session],
    syncers: Mapping[str, CalendarSync],
    now: datetime,
    poll_interval: timedelta = POLL_INTERVAL,
) -> Report:
    """Sync every due calendar of the accounts given, once."""
    with transaction(factory) as session:
        work = [
            (row.account, row.address)
            for row in due(session, now, poll_interval)
            if row.account in syncers
        ]
    total = Report()
    for account, address in work:
        total.merge(syncers[account].sync(address, now))
    return total
