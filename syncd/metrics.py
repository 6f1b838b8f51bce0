"""Prometheus metrics: what syncd did, what it cost in API calls, and what needs a person.

Three sources feed one ``CollectorRegistry`` (a registry per ``Metrics``,
not the library's global one, so tests and several apps in one process do
not share counts):

* ``Metrics.record`` turns each calendar's ``engine.Report`` into counters:
  syncs by provider and outcome, writes, events seen, skipped events by
  reason, errors by kind, and the push-to-write lag.
* ``metered`` wraps a provider and counts every call of its API by method,
  and the calls that raised by error class, whoever makes them (engine,
  push channels). Quota is the real limit of this service, so these are the
  figures to watch.
* ``CalendarHealth`` reads the calendars table at scrape time: how many
  calendars each provider has, how many are failing and how many wait for
  re-authorisation. Reading at scrape time keeps it right across restarts
  and in web-only replicas that never sync.

Labels are bounded sets only (provider, method, outcome, reason, error
class): never an address or a token, which would leak people into a
monitoring system and explode its series count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from providers.base import Channel, Provider, Watchable
from providers.model import ChangePage, Event, Window
from syncd.engine import Report
from syncd.store import transaction
from syncd.store.models import Calendar

log = logging.getLogger(__name__)

#: The content type of ``exposition()``'s text.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# One calendar's sync: an unchanged one takes milliseconds, a first full sync minutes.
SYNC_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# A push waits out the de-herd delay and a scheduler tick, then the sync: seconds to minutes.
LAG_BUCKETS = (1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)

T = TypeVar("T")


class Metrics:
    """The metrics of one process, in a registry of their own."""

    def __init__(
        self,
        factory: sessionmaker[Session] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.syncs = Counter(
            "syncd_syncs",
            "Calendar syncs, by outcome (ok, error, reauth).",
            ["provider", "outcome"],
            registry=r,
        )
        self.sync_seconds = Histogram(
            "syncd_sync_duration_seconds",
            "Time one calendar's sync took.",
            ["provider"],
            buckets=SYNC_BUCKETS,
            registry=r,
        )
        self.events = Counter(
            "syncd_events_seen", "Changed events read from calendars.", ["provider"], registry=r
        )
        self.writes = Counter(
            "syncd_writes", "Event descriptions written.", ["provider"], registry=r
        )
        self.conflicts = Counter(
            "syncd_write_conflicts",
            "Writes refused because the event changed since it was read (then re-read, retried).",
            ["provider"],
            registry=r,
        )
        self.skipped = Counter(
            "syncd_skipped_events",
            "Events given no agenda block, by reason.",
            ["reason"],
            registry=r,
        )
        self.errors = Counter(
            "syncd_errors", "Failed calendar syncs, by error class.", ["kind"], registry=r
        )
        self.calls = Counter(
            "syncd_provider_calls",
            "Calls of a provider's API (each page of changes is one).",
            ["provider", "method"],
            registry=r,
        )
        self.call_errors = Counter(
            "syncd_provider_call_errors",
            "Provider API calls that raised, by error class (retried ones included).",
            ["provider", "kind"],
            registry=r,
        )
        self.push_lag = Histogram(
            "syncd_push_to_write_seconds",
            "From a change notification (webhook or agenda edit) marking a calendar due "
            "to the end of the sync that wrote its invites.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        if factory is not None:
            self.registry.register(CalendarHealth(factory))

    def record(self, report: Report, provider: str, seconds: float) -> None:
        """Count one calendar's sync that took ``seconds`` (wall time, measured by the caller)."""
        if "AuthRevoked" in report.error_kinds:
            outcome = "reauth"
        elif report.errors:
            outcome = "error"
        else:
            outcome = "ok"
        self.syncs.labels(provider, outcome).inc()
        self.sync_seconds.labels(provider).observe(seconds)
        self.events.labels(provider).inc(report.events_seen)
        self.writes.labels(provider).inc(report.writes)
        self.conflicts.labels(provider).inc(report.conflicts)
        for reason, count in report.skipped.items():
            self.skipped.labels(reason).inc(count)
        for kind, count in report.error_kinds.items():
            self.errors.labels(kind).inc(count)
        unclassified = len(report.errors) - sum(report.error_kinds.values())
        if unclassified > 0:  # e.g. giving up on an event after repeated conflicts
            self.errors.labels("other").inc(unclassified)
        for lag in report.push_lags:
            # The engine measures up to the sync's start; its writes land by its end.
            self.push_lag.observe(lag + seconds)

    def exposition(self) -> bytes:
        return exposition(self.registry)


def exposition(registry: CollectorRegistry) -> bytes:
    """``registry`` in Prometheus' text format (``CONTENT_TYPE``)."""
    return generate_latest(registry)


class CalendarHealth:
    """Gauges read from the calendars table when scraped."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("syncd_calendars", "Calendars watched.", labels=["provider"]),
            GaugeMetricFamily(
                "syncd_calendars_failing",
                "Calendars whose last sync failed (retrying with backoff).",
                labels=["provider"],
            ),
            GaugeMetricFamily(
                "syncd_calendars_needing_reauth",
                "Calendars that stopped syncing until a person re-authorises access.",
                labels=["provider"],
            ),
        )

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        query = select(
            Calendar.provider,
            func.count(),
            func.sum(case((Calendar.error_count > 0, 1), else_=0)),
            func.sum(case((Calendar.needs_reauth.is_(True), 1), else_=0)),
        ).group_by(Calendar.provider)
        try:
            with transaction(self.factory) as session:
                rows = session.execute(query).all()
        except SQLAlchemyError as error:  # /readyz reports the database; keep /metrics up
            log.warning("calendar gauges skipped: database error %s", type(error).__name__)
            return
        total, failing, reauth = self._families()
        for provider, count, errors, needs_reauth in rows:
            total.add_metric([provider], count)
            failing.add_metric([provider], errors or 0)
            reauth.add_metric([provider], needs_reauth or 0)
        yield from (total, failing, reauth)


# -- provider calls ------------------------------------------------------------------


class _Metered:
    """A ``Provider`` that counts each call before handing it to the real one."""

    def __init__(self, inner: Provider, metrics: Metrics) -> None:
        self.inner = inner
        self.name = inner.name
        self.mails_attendees = inner.mails_attendees
        self._metrics = metrics

    def _count(self, method: str, call: Callable[[], T]) -> T:
        self._metrics.calls.labels(self.name, method).inc()
        try:
            return call()
        except Exception as error:
            self._metrics.call_errors.labels(self.name, type(error).__name__).inc()
            raise

    def calendars(self) -> list[str]:
        return self._count("calendars", self.inner.calendars)

    def changes(self, calendar: str, cursor: str | None, window: Window) -> Iterator[ChangePage]:
        """Each page is a request of its own: counted as it is fetched."""
        pages = iter(self.inner.changes(calendar, cursor, window))
        while True:
            try:
                page = next(pages)
            except StopIteration:  # the last page was the last request
                return
            except Exception as error:
                self._metrics.calls.labels(self.name, "changes").inc()
                self._metrics.call_errors.labels(self.name, type(error).__name__).inc()
                raise
            self._metrics.calls.labels(self.name, "changes").inc()
            yield page

    def instances(self, calendar: str, series_id: str, window: Window) -> list[Event]:
        return self._count("instances", lambda: self.inner.instances(calendar, series_id, window))

    def get(self, calendar: str, event_id: str) -> Event:
        return self._count("get", lambda: self.inner.get(calendar, event_id))

    def update_description(
        self, calendar: str, event_id: str, description: str, etag: str, tag: str | None
    ) -> Event:
        return self._count(
            "update_description",
            lambda: self.inner.update_description(calendar, event_id, description, etag, tag),
        )


class _MeteredWatchable(_Metered):
    """The same for a provider with push: ``watch`` and ``stop`` are API calls too."""

    def __init__(self, inner: Provider, metrics: Metrics) -> None:
        assert isinstance(inner, Watchable)
        super().__init__(inner, metrics)
        self.watching: Watchable = inner

    def watch(
        self, calendar: str, address: str, channel_id: str, token: str, ttl: timedelta
    ) -> Channel:
        return self._count(
            "watch", lambda: self.watching.watch(calendar, address, channel_id, token, ttl)
        )

    def stop(self, channel: Channel) -> None:
        self._count("stop", lambda: self.watching.stop(channel))


def metered(provider: Provider, metrics: Metrics) -> Provider:
    """``provider``, counting its calls into ``metrics``; still ``Watchable`` if it was."""
    if isinstance(provider, Watchable):
        return _MeteredWatchable(provider, metrics)
    return _Metered(provider, metrics)
