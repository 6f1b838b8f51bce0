"""A five-person Google Workspace organization, end to end over HTTP.

The real google-api-python-client and google-auth talk to the emulator; push
notifications reach syncd's webhook served by uvicorn; the scheduler's tick
syncs what is due. Each test asserts what a person, or an admin reading the
wire, would notice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from syncd import block, push
from syncd.store import transaction
from syncd.store.models import Calendar, Meeting
from syncd.web.app import create_app
from tests.e2e.org import ANA, BO, CY, DEE, EVE, PEOPLE, Org, google_org, seed
from tests.e2e.servers import Webhook


@pytest.fixture
def org(db_engine: Engine) -> Iterator[Org]:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with google_org(db_engine, now, sleep=lambda s: None) as world:
        app = create_app(world.factory, clock=lambda: world.now)
        with Webhook(app) as base:
            world.webhook = f"{base}/hooks/google"
            yield world


def test_an_org_of_five_gets_correct_blocks_and_a_second_pass_writes_nothing(org: Org) -> None:
    events = seed(org)
    report = org.sync_all()

    weekly, first = events["weekly"]
    assert report.errors == []
    for week in (0, 1):
        text = org.block_of(ANA, weekly, first + timedelta(days=7 * week))
        assert text is not None and "/m/" in text
        assert org.block_of(BO, weekly, first + timedelta(days=7 * week)) == text
    assert org.block_of(ANA, weekly, first + timedelta(days=14)) is None
    biweekly, bi_first = events["biweekly"]
    assert org.block_of(CY, biweekly, bi_first) is not None
    assert org.block_of(CY, biweekly, bi_first + timedelta(days=14)) is None  # 14 days: out
    adhoc, _ = events["adhoc"]
    assert org.block_of(EVE, adhoc) is not None
    assert org.block_of(ANA, events["team"][0]) is None

    # HTML the person wrote is still there, and the ad-hoc 1:1 joined Ana's pairs
    copy = org.emulator.copy_id(ANA, weekly, first)
    assert org.emulator.description(ANA, copy).startswith("<p>Standing notes</p>")
    with transaction(org.factory) as session:
        pairs = {m.pair_id for m in session.scalars(select(Meeting))}
    assert len(pairs) == 3

    # every write went out conditional, silent and tagged, through the organizer
    sent = [r for r in org.emulator.requests if r.method == "PATCH"]
    assert len(sent) == report.writes == 4  # 2 weekly + 1 biweekly + 1 ad hoc
    assert all(r.headers.get("if-match") for r in sent)
    assert all(r.query.get("sendUpdates") == ["none"] for r in sent)
    assert all("syncdMeeting" in r.body["extendedProperties"]["private"] for r in sent)

    assert org.sync_all().writes == 0


def test_no_request_ever_patches_a_series_master(org: Org) -> None:
    events = seed(org)
    org.sync_all()
    org.now += timedelta(days=8)
    org.sync_all()

    masters = {
        org.emulator.copy_id(ANA, events["weekly"][0]),
        org.emulator.copy_id(CY, events["biweekly"][0]),
    }
    assert org.patches() and not set(org.patches()) & masters


def test_push_leads_to_a_write_within_one_tick_and_our_own_write_to_none(org: Org) -> None:
    seed(org)
    org.sync_all()
    with transaction(org.factory) as session:
        rows = {row.address: row.id for row in session.scalars(select(Calendar))}
    for person in PEOPLE:
        push.keep_open(
            org.factory, org.syncer.provider, rows[person], person, org.webhook,
            timedelta(days=7), org.now,
        )  # fmt: skip
    assert org.emulator.wait_for_notifications()
    assert {n.resource_state for n in org.emulator.notifications} == {"sync"}
    assert all(n.status == 204 for n in org.emulator.notifications)
    assert org.tick().calendars == 0  # nothing due: all synced just now, no change yet

    start = org.now + timedelta(days=3)
    uid = org.emulator.create_event(BO, [BO, CY], "Bo / Cy", start, start + timedelta(minutes=30))
    assert org.emulator.wait_for_notifications()
    org.now += timedelta(seconds=3)  # past the de-herd delay

    first = org.tick()

    assert first.writes == 1 and org.block_of(BO, uid) is not None
    assert first.calendars == 2  # Bo's and Cy's calendars, nobody else's
    assert org.emulator.wait_for_notifications()  # our write notifies Bo and Cy
    org.now += timedelta(seconds=3)
    # the echo of our own write is synced (now or in the tick before) and changes nothing
    assert org.tick().writes == 0
    assert org.emulator.wait_for_notifications()
    org.now += timedelta(seconds=3)
    assert org.tick().calendars == 0  # settled: no write, no notification ping-pong


def test_a_change_heard_by_push_is_synced_at_once_and_our_echo_one_interval_later(
    db_engine: Engine,
) -> None:
    """A person who just scheduled a 1:1 finds its link in seconds, not after a debounce."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with google_org(db_engine, now, sleep=lambda s: None) as org:
        wakes: list[float] = []
        app = create_app(org.factory, clock=lambda: org.now, on_mark=wakes.append)
        with Webhook(app) as base:
            seed(org)
            org.sync_all()
            with transaction(org.factory) as session:
                rows = {row.address: row.id for row in session.scalars(select(Calendar))}
            for person in (BO, CY):
                push.keep_open(
                    org.factory, org.syncer.provider, rows[person], person,
                    f"{base}/hooks/google", timedelta(days=7), org.now,
                )  # fmt: skip
            assert org.emulator.wait_for_notifications()
            org.now += timedelta(minutes=1)  # the last sync is well in the past

            start = org.now + timedelta(days=3)
            uid = org.emulator.create_event(
                BO, [BO, CY], "Bo / Cy", start, start + timedelta(minutes=30)
            )
            assert org.emulator.wait_for_notifications()
            assert wakes and set(wakes) == {0.0}, "the worker is woken for now, not later"
            heard = len(wakes)
            first = org.tick()  # the same instant: no debounce waited
            assert first.writes == 1 and first.calendars == 2
            assert org.block_of(BO, uid) is not None

            # our write notifies Bo and Cy (maybe while the tick still runs)
            assert org.emulator.wait_for_notifications()
            echoes = wakes[heard:]
            assert echoes and set(echoes) == {push.DEBOUNCE.total_seconds()}
            assert org.tick().calendars == 0, "the echo of our write waits out the interval"
            org.now += push.DEBOUNCE
            echo = org.tick()
            assert echo.calendars == 2 and echo.writes == 0


def test_a_talking_point_costs_one_list_and_one_patch(org: Org) -> None:
    """The write goes on the text the last poll listed (If-Match its etag); no GET first."""
    uid, first = seed(org)["weekly"]
    org.sync_all()
    org.sync_all()  # our writes come back once and change nothing
    sent = len(org.emulator.requests)

    org.add_point(uid, first, "Hiring plan", BO)
    report = org.syncer.sync(ANA, org.now)

    assert report.writes == 1 and "Hiring plan (bo)" in (org.block_of(ANA, uid, first) or "")
    assert org.calls_since(sent) == ["list", "patch"]
    assert org.emulator.requests[-1].headers.get("if-match")


def test_forged_and_unknown_notifications_change_nothing(org: Org) -> None:
    import httpx

    seed(org)
    org.sync_all()
    forged = httpx.post(
        org.webhook,
        headers={
            "X-Goog-Channel-ID": "made-up",
            "X-Goog-Channel-Token": "guess",
            "X-Goog-Resource-State": "exists",
        },
    )
    assert forged.status_code == 404
    assert org.tick().calendars == 0


def test_a_concurrent_edit_survives_the_412_path(org: Org) -> None:
    events = seed(org)
    weekly, first = events["weekly"]
    copy = org.emulator.copy_id(ANA, weekly, first)

    def ana_types(calendar: str, event_id: str) -> None:
        if event_id == copy:
            body = org.emulator.description(calendar, event_id)
            org.emulator.edit_description(calendar, event_id, body + "<p>Ana, just now</p>")

    org.emulator.faults.before_patch(ana_types, times=1)
    report = org.sync_all()

    body = org.emulator.description(ANA, copy)
    assert "<p>Ana, just now</p>" in body and block.extract(body) is not None
    assert report.conflicts == 1
    assert any(r.status == 412 for r in org.emulator.requests if r.method == "PATCH")


def test_a_410_recovers_with_a_full_sync_and_no_writes(org: Org) -> None:
    seed(org)
    org.sync_all()
    for person in PEOPLE:
        org.emulator.faults.expire_sync_tokens(person)

    report = org.sync_all()

    assert report.full_syncs == 5 and report.errors == [] and report.writes == 0
    lists = [r for r in org.emulator.requests if r.op == "list"]
    assert any(r.status == 410 for r in lists)


def test_one_revoked_person_leaves_the_other_four_synced(org: Org) -> None:
    events = seed(org)
    org.emulator.revoke(EVE)

    report = org.sync_all()

    assert len(report.errors) == 1 and EVE in report.errors[0]
    weekly, first = events["weekly"]
    assert org.block_of(ANA, weekly, first) is not None
    assert org.block_of(CY, *events["biweekly"]) is not None
    with transaction(org.factory) as session:
        eve = session.scalars(select(Calendar).where(Calendar.address == EVE)).one()
        assert eve.needs_reauth and eve.next_sync_at is None
    org.now += timedelta(minutes=10)
    before = len(org.emulator.requests)
    org.tick()
    assert all(r.user != EVE for r in org.emulator.requests[before:])  # not retried


def test_channels_are_renewed_before_they_expire_and_stopped_on_request(org: Org) -> None:
    seed(org)
    org.sync_all()
    with transaction(org.factory) as session:
        ana = session.scalars(select(Calendar).where(Calendar.address == ANA)).one().id
    provider = org.syncer.provider
    first = push.keep_open(org.factory, provider, ana, ANA, org.webhook, timedelta(days=1), org.now)
    assert first is not None
    assert (
        push.keep_open(org.factory, provider, ana, ANA, org.webhook, timedelta(days=1), org.now)
        is None
    )

    org.now += timedelta(hours=13)  # inside the renewal margin of a one-day channel
    second = push.keep_open(
        org.factory, provider, ana, ANA, org.webhook, timedelta(days=1), org.now
    )

    assert second is not None and second.id != first.id
    stops = [r.body for r in org.emulator.requests if r.op == "stop"]
    assert stops == [{"id": first.id, "resourceId": first.resource_id}]

    push.stop_all(org.factory, provider, ana, ANA)
    assert org.emulator.wait_for_notifications()
    sent = len(org.emulator.notifications)
    start = org.now + timedelta(days=2)
    org.emulator.create_event(ANA, [ANA, BO], "after stop", start, start + timedelta(minutes=30))
    assert org.emulator.wait_for_notifications()
    assert len(org.emulator.notifications) == sent  # stopped channels are silent


def write_config(org: Org, tmp_path: Path, account_extra: str = "") -> Path:
    """A config for the emulated domain, as an admin writes it, with its key file beside it."""
    key = tmp_path / "service-account.json"
    key.write_text(json.dumps(org.emulator.service_account_info()))
    key.chmod(0o600)
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[syncd]\ndatabase = "sqlite:///{tmp_path / "s.db"}"\n'
        '[detect]\norg_domains = ["example.org"]\n'
        '[[accounts]]\nname = "acme"\nprovider = "google"\n'
        f"{account_extra}"
        f'service_account_file = "{key.name}"\napi_root = "{org.emulator.api_root}"\n'
        f"calendars = {json.dumps(list(PEOPLE))}\n"
    )
    return config


def test_sync_once_runs_a_google_account_from_its_config(
    org: Org, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    from syncd.cli import main

    events = seed(org)
    config = write_config(org, tmp_path)

    # First a dry run: it lists each write it would make, and makes none.
    assert main(["sync-once", "--dry-run", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "writes: 0 (planned 4)" in out and "dry run: 4 write(s) planned, none made" in out
    assert f"{ANA}: 'Ana / Bo' at " in out and "would add the block" in out
    assert org.patches() == []

    assert main(["sync-once", "-c", str(config)]) == 0

    out = capsys.readouterr().out
    assert "calendars: 5" in out and "writes: 4" in out and "errors: none" in out
    assert "dry run" not in out
    assert org.block_of(ANA, *events["weekly"]) is not None


def test_with_send_updates_all_the_dry_run_counts_the_mails_a_pass_would_send(
    org: Org, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An admin who turns on Google's update mail sees what it costs before it costs it."""
    from syncd.cli import main

    seed(org)
    config = write_config(org, tmp_path, 'send_updates = "all"\n')

    assert main(["sync-once", "--dry-run", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.count("(mails the attendees: first block)") == 4
    assert "attendee mails: the invite writes would mail 4;" in out
    assert org.emulator.mails == []

    assert main(["sync-once", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "writes: 4" in out and "attendee mails: the invite writes mailed 4;" in out
    # the other person of each write: Bo twice (two weekly occurrences), Dee, and Ana for
    # Eve's ad-hoc chat; no organizer is mailed about their own meeting
    assert sorted(mail.recipient for mail in org.emulator.mails) == [ANA, BO, BO, DEE]

    assert main(["explain", "-c", str(config), "--calendar", ANA]) == 0
    assert "invite writes mail the attendees: per occurrence at most 3" in capsys.readouterr().out
