"""Metrics as Prometheus scrapes them: calls, writes, skips, errors, push lag, re-auth."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select

from providers.base import AuthRevoked, Transient, Watchable
from providers.memory import MemoryProvider
from syncd import push
from syncd.engine import CalendarSync, Report
from syncd.metrics import Metrics, metered
from syncd.store.models import Calendar
from tests.unit.world import ANA, BO, CY, MONDAY, World, weekly

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(metrics: Metrics) -> Samples:
    """Every sample of the exposition text, keyed by name and labels."""
    text = metrics.exposition().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


class Metered(World):
    """The world, its provider seen through ``metered``, each sync recorded."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.metrics = Metrics(self.factory)
        self.metered = CalendarSync(
            metered(self.provider, self.metrics),
            self.factory,
            self.policy,
            account="acme",
            sleep=self.sleeps.append,
        )

    def sync(self) -> Report:
        total = Report()
        for address in self.provider.calendars():
            total.merge(self.sync_one(address))
        return total

    def sync_one(self, address: str, seconds: float = 0.5) -> Report:
        report = self.metered.sync(address, self.now)
        self.metrics.record(report, self.provider.name, seconds)
        return report


@pytest.fixture
def world(db_engine: Engine) -> Metered:
    return Metered(db_engine)


def test_a_sync_shows_its_calls_writes_and_skipped_events(world: Metered) -> None:
    weekly(world)  # Ana and Bo: a 1:1
    start = MONDAY + timedelta(days=2)
    world.provider.create_event(ANA, [ANA, BO, CY], "Team", start, start + timedelta(hours=1))

    world.settle()

    samples = scrape(world.metrics)
    sent = Counter(request.op for request in world.provider.requests)
    for method in ("changes", "instances", "update_description"):
        assert (
            value(samples, "syncd_provider_calls_total", provider="memory", method=method)
            == sent[method]
        ), method
    # the writes went on the text just listed: no GET was made, and none is counted
    assert sent["get"] == 0
    assert value(samples, "syncd_provider_calls_total", provider="memory", method="get") is None
    assert value(samples, "syncd_writes_total", provider="memory") == 2
    # the team meeting, seen in each of the three calendars
    assert value(samples, "syncd_skipped_events_total", reason="more-than-two-people") == 3
    syncs = value(samples, "syncd_syncs_total", provider="memory", outcome="ok")
    assert syncs is not None and syncs >= 3 and syncs % 3 == 0
    assert value(samples, "syncd_sync_duration_seconds_count", provider="memory") == syncs
    assert value(samples, "syncd_calendars", provider="memory") == 3
    assert value(samples, "syncd_calendars_needing_reauth", provider="memory") == 0


def test_labels_name_no_person_and_no_token(world: Metered) -> None:
    uid = weekly(world)
    world.settle()
    token = world.meeting(uid, MONDAY + timedelta(days=1, hours=2)).token

    text = world.metrics.exposition().decode()

    assert "@" not in text and "example.org" not in text and token not in text


def test_failed_calls_and_failed_syncs_are_counted_by_error_class(world: Metered) -> None:
    weekly(world)
    world.provider.faults.fail("changes", Transient("503"), times=1)  # retried, then fine
    world.provider.faults.fail("changes", AuthRevoked("invalid_grant"), times=1)

    world.sync_one(ANA)  # Transient, then the retry meets AuthRevoked
    world.sync_one(BO)

    samples = scrape(world.metrics)
    calls = value(samples, "syncd_provider_calls_total", provider="memory", method="changes")
    assert calls == sum(1 for r in world.provider.requests if r.op == "changes")
    errors = "syncd_provider_call_errors_total"
    assert value(samples, errors, provider="memory", kind="Transient") == 1
    assert value(samples, errors, provider="memory", kind="AuthRevoked") == 1
    assert value(samples, "syncd_errors_total", kind="AuthRevoked") == 1
    assert value(samples, "syncd_syncs_total", provider="memory", outcome="reauth") == 1
    assert value(samples, "syncd_syncs_total", provider="memory", outcome="ok") == 1


def test_the_reauth_gauge_follows_the_database(world: Metered) -> None:
    weekly(world)
    world.settle()
    world.provider.faults.fail("changes", AuthRevoked("invalid_grant"), times=2)

    world.sync_one(ANA)
    world.sync_one(BO)

    samples = scrape(world.metrics)
    assert value(samples, "syncd_calendars_needing_reauth", provider="memory") == 2
    assert value(samples, "syncd_calendars_failing", provider="memory") == 2

    world.sync_one(ANA)  # access granted again: the next sync succeeds

    samples = scrape(world.metrics)
    assert value(samples, "syncd_calendars_needing_reauth", provider="memory") == 1
    assert value(samples, "syncd_calendars_failing", provider="memory") == 1


def test_push_to_write_lag_runs_from_the_push_to_the_end_of_the_sync_that_wrote(
    world: Metered,
) -> None:
    world.settle()
    weekly(world, ANA, CY, title="Ana / Cy 1:1")  # a change the webhook tells us about
    with world.session() as session:
        row = session.scalars(select(Calendar).where(Calendar.address == ANA)).one()
        push.mark_due(row, world.now)
        push.mark_due(row, world.now + timedelta(seconds=1))  # a burst: the first one counts

    world.advance(seconds=30)
    report = world.sync_one(ANA, seconds=4)

    assert report.writes == 2 and report.push_lags == [30.0]
    samples = scrape(world.metrics)
    lag = "syncd_push_to_write_seconds"
    assert value(samples, f"{lag}_count") == 1 and value(samples, f"{lag}_sum") == 34
    assert value(samples, f"{lag}_bucket", le="30.0") == 0
    assert value(samples, f"{lag}_bucket", le="60.0") == 1
    with world.session() as session:
        row = session.scalars(select(Calendar).where(Calendar.address == ANA)).one()
        assert row.pushed_at is None and row.next_sync_at is None


def test_a_push_that_needs_no_write_adds_no_lag(world: Metered) -> None:
    weekly(world)
    world.settle()
    with world.session() as session:
        push.mark_due(session.scalars(select(Calendar)).first(), world.now)

    world.advance(seconds=10)
    world.sync()
    world.advance(minutes=10)
    world.sync()

    samples = scrape(world.metrics)
    assert value(samples, "syncd_push_to_write_seconds_count") == 0


def test_metered_keeps_push_for_providers_that_have_it(world: Metered) -> None:
    plain = metered(MemoryProvider([ANA]), world.metrics)

    assert plain.name == "memory" and not isinstance(plain, Watchable)
    assert isinstance(metered(_Pushy(), world.metrics), Watchable)


class _Pushy(MemoryProvider):
    """A memory provider that claims push, to see the wrapper keep that face."""

    def watch(self, calendar, address, channel_id, token, ttl):
        raise NotImplementedError

    def stop(self, channel):
        raise NotImplementedError
