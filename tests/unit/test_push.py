"""Judging notifications: only a live channel with its own token marks a calendar due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from providers.base import Notification
from syncd import push
from syncd.store import sessions, transaction
from syncd.store.models import Calendar, PushChannel

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)


@pytest.fixture
def factory(db_engine: Engine):
    factory = sessions(db_engine)
    with transaction(factory) as session:
        calendar = Calendar(account="a", provider="google", address="ana@example.org")
        session.add(calendar)
        session.flush()
        session.add(
            PushChannel(
                calendar_id=calendar.id,
                channel_id="ch-1",
                resource_id="r-1",
                token_digest=push.digest("right-token"),
                expires=NOW + timedelta(days=1),
                created_at=NOW,
            )
        )
    return factory


def judge(factory, notification: Notification | None, now: datetime = NOW) -> push.Outcome:
    with transaction(factory) as session:
        return push.accept(session, notification, now)


def due_at(factory) -> datetime | None:
    with transaction(factory) as session:
        return session.scalars(select(Calendar)).one().next_sync_at


def test_a_genuine_change_marks_the_calendar_due_after_the_de_herd_delay(factory) -> None:
    assert judge(factory, Notification("ch-1", "right-token")) is push.Outcome.DUE
    assert due_at(factory) == NOW + push.DEBOUNCE


def test_a_burst_keeps_the_first_mark(factory) -> None:
    judge(factory, Notification("ch-1", "right-token"))
    judge(factory, Notification("ch-1", "right-token"), NOW + timedelta(seconds=1))
    assert due_at(factory) == NOW + push.DEBOUNCE


@pytest.mark.parametrize(
    ("notification", "now"),
    [
        (Notification("ch-1", "wrong-token"), NOW),
        (Notification("ch-1", ""), NOW),
        (Notification("ch-2", "right-token"), NOW),
        (Notification("ch-1", "right-token"), NOW + timedelta(days=2)),  # expired
        (None, NOW),
    ],
    ids=["wrong-token", "no-token", "unknown-channel", "expired-channel", "not-a-notification"],
)
def test_anything_else_is_unknown_and_changes_nothing(factory, notification, now) -> None:
    assert judge(factory, notification, now) is push.Outcome.UNKNOWN
    assert due_at(factory) is None


def test_a_handshake_confirms_without_marking(factory) -> None:
    assert (
        judge(factory, Notification("ch-1", "right-token", handshake=True))
        is push.Outcome.HANDSHAKE
    )
    assert due_at(factory) is None


def test_lifecycle_events_renew_or_resync(factory) -> None:
    outcome = judge(
        factory, Notification("ch-1", "right-token", lifecycle="reauthorizationRequired")
    )
    assert outcome is push.Outcome.RENEW
    with transaction(factory) as session:
        assert session.scalars(select(PushChannel)).one().expires == NOW  # replaced next round

    outcome = judge(
        factory, Notification("ch-1", "right-token", lifecycle="missed"), NOW - timedelta(hours=1)
    )
    assert outcome is push.Outcome.DUE


def test_a_removed_subscription_is_forgotten_and_the_calendar_resynced(factory) -> None:
    outcome = judge(factory, Notification("ch-1", "right-token", lifecycle="subscriptionRemoved"))
    assert outcome is push.Outcome.RENEW
    assert due_at(factory) == NOW + push.DEBOUNCE
    with transaction(factory) as session:
        assert session.scalars(select(PushChannel)).all() == []


def test_the_token_is_stored_only_as_a_digest(factory) -> None:
    with transaction(factory) as session:
        stored = session.scalars(select(PushChannel)).one()
    assert "right-token" not in stored.token_digest and len(stored.token_digest) == 64
