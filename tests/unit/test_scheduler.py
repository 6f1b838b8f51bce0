"""When a calendar is due: push marks, backoff, polling, and never while awaiting re-auth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from syncd.scheduler import POLL_INTERVAL, due
from syncd.store import sessions, transaction
from syncd.store.models import Calendar

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)


def test_due_follows_marks_backoff_polling_and_reauth(db_engine: Engine) -> None:
    factory = sessions(db_engine)
    rows = {
        "never-synced": {},
        "polled-recently": {"last_sync_at": NOW - timedelta(minutes=1)},
        "poll-interval-passed": {"last_sync_at": NOW - POLL_INTERVAL},
        "pushed": {"last_sync_at": NOW - timedelta(seconds=30), "next_sync_at": NOW},
        "push-debouncing": {"last_sync_at": NOW, "next_sync_at": NOW + timedelta(seconds=2)},
        "backing-off": {
            "last_sync_at": NOW - POLL_INTERVAL,
            "next_sync_at": NOW + timedelta(minutes=4),
        },
        "needs-reauth": {"needs_reauth": True},
    }
    with transaction(factory) as session:
        for name, fields in rows.items():
            session.add(Calendar(account="a", provider="memory", address=name, **fields))

    with transaction(factory) as session:
        names = [row.address for row in due(session, NOW)]

    assert names == ["never-synced", "poll-interval-passed", "pushed"]
