"""Probes and metrics as a load balancer and Prometheus see them: no sign-in, no secrets."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from syncd.engine import Report
from syncd.health import Heartbeat
from syncd.metrics import Metrics
from syncd.store import connect, sessions
from syncd.web.app import create_app
from tests.unit.web.conftest import BEHIND_PROXY, Browser, Org


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_healthz_answers_without_sign_in(org: Org) -> None:
    anonymous = Browser(org.app())  # behind the proxy, but nobody signed in

    answer = anonymous.get("/healthz")

    assert answer.status_code == 200 and answer.text == "ok"


def test_readyz_follows_the_schedulers_heartbeat(org: Org) -> None:
    clock = FakeClock()
    heartbeat = Heartbeat(max_age=60, clock=clock)
    probe = Browser(create_app(org.factory, web=BEHIND_PROXY, heartbeat=heartbeat))

    before = probe.get("/readyz")
    heartbeat.beat()
    ticking = probe.get("/readyz")
    clock.now += 61
    stalled = probe.get("/readyz")

    assert before.status_code == 503 and "not ticked" in before.json()["reason"]
    assert ticking.status_code == 200 and ticking.json() == {"status": "ready"}
    assert stalled.status_code == 503
    assert stalled.json()["reason"].startswith("scheduler stalled: last tick 61s ago")
    assert probe.get("/healthz").status_code == 200  # alive, just not ready


def test_readyz_without_a_scheduler_checks_the_database_only(org: Org) -> None:
    assert Browser(org.app()).get("/readyz").json() == {"status": "ready"}


def test_readyz_is_503_when_the_database_is_gone(tmp_path: Path) -> None:
    gone = sessions(connect(f"sqlite:///{tmp_path / 'no-such-dir' / 'syncd.db'}"))
    heartbeat = Heartbeat(max_age=60)
    heartbeat.beat()
    probe = TestClient(create_app(gone, heartbeat=heartbeat), base_url="https://testserver")

    answer = probe.get("/readyz")

    assert answer.status_code == 503
    assert answer.json() == {"status": "unready", "reason": "database unreachable"}
    assert str(tmp_path) not in answer.text
    assert probe.get("/healthz").status_code == 200
    assert probe.get("/metrics").status_code == 200  # counters still served, gauges left out


def test_metrics_serves_the_registry_in_prometheus_text_format(org: Org) -> None:
    metrics = Metrics(org.factory)
    metrics.record(Report(calendars=1, events_seen=4, writes=2), "memory", 0.2)
    meeting_token, pair_token = org.tokens()
    anonymous = Browser(create_app(org.factory, web=BEHIND_PROXY, registry=metrics.registry))

    answer = anonymous.get("/metrics")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    assert samples[("syncd_writes_total", (("provider", "memory"),))] == 2
    assert samples[("syncd_calendars", (("provider", "memory"),))] == 3
    for secret in (meeting_token, pair_token, "@example.org"):
        assert secret not in answer.text


def test_the_default_registry_has_the_calendar_gauges(org: Org) -> None:
    text = Browser(org.app()).get("/metrics").text

    assert 'syncd_calendars{provider="memory"} 3.0' in text
    assert 'syncd_calendars_needing_reauth{provider="memory"} 0.0' in text
