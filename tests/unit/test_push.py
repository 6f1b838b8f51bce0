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
        return push.accept(session, notification, now).outcome


def calendar_was(factory, **state: object) -> None:
    with transaction(factory) as session:
        calendar = session.scalars(select(Calendar)).one()
        for key, value in state.items():
            setattr(calendar, key, value)


def due_at(factory) -> datetime | None:
    with transaction(factory) as session:
        return session.scalars(select(Calendar)).one().next_sync_at


def test_a_change_on_a_calendar_not_synced_lately_is_due_at_once(factory) -> None:
    calendar_was(factory, last_sync_at=NOW - push.DEBOUNCE * 3)
    with transaction(factory) as session:
        heard = push.accept(session, Notification("ch-1", "right-token"), NOW)
    assert heard.outcome is push.Outcome.DUE and heard.due == NOW
    assert due_at(factory) == NOW


def test_a_change_right_after_a_sync_waits_out_the_interval(factory) -> None:
    """Often our own write's echo: one more sync, but not a sync per notification."""
    synced = NOW - timedelta(seconds=0.5)
    calendar_was(factory, last_sync_at=synced)
    for n in range(5):  # a burst within the interval
        judge(factory, Notification("ch-1", "right-token"), NOW + timedelta(seconds=0.2 * n))
    assert due_at(factory) == synced + push.DEBOUNCE


def test_a_change_while_a_sync_runs_is_due_one_interval_later(factory) -> None:
    """The running sync may have read past the change or not: sync once more, later."""
    calendar_was(factory, lease_owner="w", lease_until=NOW + timedelta(minutes=5), next_sync_at=NOW)
    judge(factory, Notification("ch-1", "right-token"))
    assert due_at(factory) == NOW + push.DEBOUNCE


def test_a_pending_mark_is_never_moved_later(factory) -> None:
    edit_mark = NOW + timedelta(seconds=1)  # an agenda edit's, due soon
    calendar_was(factory, last_sync_at=NOW - timedelta(seconds=0.1), next_sync_at=edit_mark)
    judge(factory, Notification("ch-1", "right-token"))
    assert due_at(factory) == edit_mark

    calendar_was(factory, next_sync_at=NOW - timedelta(seconds=1))  # due, not claimed yet
    judge(factory, Notification("ch-1", "right-token"))
    assert due_at(factory) == NOW - timedelta(seconds=1)


def test_an_agenda_edit_always_waits_the_debounce(factory) -> None:
    """People type in bursts: the invite follows once they pause."""
    with transaction(factory) as session:
        calendar = session.scalars(select(Calendar)).one()
        assert push.mark_due(calendar, NOW) == NOW + push.DEBOUNCE
        assert push.mark_due(calendar, NOW + timedelta(seconds=1)) == NOW + push.DEBOUNCE


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
    assert due_at(factory) == NOW  # never synced: at once
    with transaction(factory) as session:
        assert session.scalars(select(PushChannel)).all() == []


def test_the_token_is_stored_only_as_a_digest(factory) -> None:
    with transaction(factory) as session:
        stored = session.scalars(select(PushChannel)).one()
    assert "right-token" not in stored.token_digest and len(stored.token_digest) == 64
