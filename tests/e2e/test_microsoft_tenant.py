"""A five-person Microsoft 365 tenant end to end over HTTP, and a pair split across systems.

msal and httpx talk to the Graph emulator, named in the account's config
(``authority``, ``graph_root``, ``ca_file``) like any cloud; subscriptions
are validated against, and notify, syncd's webhook under uvicorn; the
scheduler's tick syncs what is due.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.oauth2 import service_account
from sqlalchemy import Engine, select

from providers.emulators.google import GoogleEmulator
from providers.emulators.graph import GraphEmulator
from providers.google.calendar import GoogleProvider
from providers.google.grant import SCOPES as GOOGLE_SCOPES
from providers.microsoft import MicrosoftPlugin
from providers.microsoft.graph import MicrosoftProvider
from providers.model import SINGLE_EVENT
from syncd import agenda, assemble, block, config, push
from syncd.engine import CalendarSync
from syncd.store import sessions, transaction
from syncd.store.models import Calendar, Meeting, Pair, PushChannel
from syncd.web.app import create_app
from tests.e2e.org import ANA, BO, CY, DEE, EVE, PEOPLE, Org, policy, seed
from tests.e2e.servers import Webhook


def graph_provider(emulator: GraphEmulator, people: tuple[str, ...]) -> MicrosoftProvider:
    """The tenant's provider as the daemon builds it: from a config file alone.

    The emulator is named by ``authority`` (its https listener), ``graph_root``
    and ``ca_file``, as a national cloud or a proxy would be; no code reaches
    into msal's transport.
    """
    folder = Path(tempfile.mkdtemp(prefix="syncd-tenant-"))
    secret = folder / "client-secret"
    secret.write_text(emulator.client_secret, encoding="utf-8")
    secret.chmod(0o600)
    settings = config.parse(
        "[sync]\npage_size = 20\n[[accounts]]\n"
        f'name = "contoso"\nprovider = "microsoft"\ncalendars = {json.dumps(list(people))}\n'
        f'tenant = "{emulator.tenant}"\nclient_id = "{emulator.client_id}"\n'
        'client_secret_file = "client-secret"\n'
        f'authority = "{emulator.login_root}"\ngraph_root = "{emulator.graph_root}"\n'
        f'ca_file = "{emulator.ca_file}"\n',
        folder / "syncd.toml",
    )
    (account,) = settings.accounts
    made = MicrosoftPlugin().provider(account, assemble.setup(account, settings))
    return made


@pytest.fixture
def tenant(db_engine: Engine) -> Iterator[Org]:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with GraphEmulator(PEOPLE) as emulator:
        provider = graph_provider(emulator, PEOPLE)
        factory = sessions(db_engine)
        syncer = CalendarSync(provider, factory, policy(), account="contoso", sleep=lambda s: None)
        world = Org(emulator, syncer, now)
        with Webhook(create_app(factory, clock=lambda: world.now)) as base:
            world.webhook = f"{base}/hooks/microsoft"
            yield world
        provider.close()


def test_a_tenant_of_five_gets_correct_blocks_and_a_second_pass_writes_nothing(
    tenant: Org,
) -> None:
    events = seed(tenant)
    report = tenant.sync_all()

    assert report.errors == []
    weekly, first = events["weekly"]
    for week in (0, 1):
        text = tenant.block_of(ANA, weekly, first + timedelta(days=7 * week))
        assert text is not None and "/m/" in text
        assert tenant.block_of(BO, weekly, first + timedelta(days=7 * week)) == text
    assert tenant.block_of(ANA, weekly, first + timedelta(days=14)) is None
    assert tenant.block_of(CY, *events["biweekly"]) is not None
    assert tenant.block_of(EVE, events["adhoc"][0]) is not None
    assert tenant.block_of(ANA, events["team"][0]) is None
    body = tenant.emulator.description(ANA, tenant.emulator.copy_id(ANA, weekly, first))
    assert "Standing notes" in body

    sent = [r for r in tenant.emulator.requests if r.method == "PATCH"]
    assert len(sent) == report.writes == 4
    assert all(r.headers.get("if-match") for r in sent)
    masters = {
        tenant.emulator.copy_id(ANA, weekly),
        tenant.emulator.copy_id(CY, events["biweekly"][0]),
    }
    assert not set(tenant.patches()) & masters

    assert tenant.sync_all().writes == 0


def subscribe_everyone(t: Org) -> None:
    with transaction(t.factory) as session:
        rows = {row.address: row.id for row in session.scalars(select(Calendar))}
    for person in PEOPLE:
        push.keep_open(
            t.factory, t.syncer.provider, rows[person], person, t.webhook,
            timedelta(days=2), t.now,
        )  # fmt: skip


def test_a_notification_leads_to_a_write_within_one_tick_and_our_echo_to_none(
    tenant: Org,
) -> None:
    seed(tenant)
    tenant.sync_all()
    subscribe_everyone(tenant)  # each subscription's address was validated by our hook
    assert tenant.tick().calendars == 0

    start = tenant.now + timedelta(days=3)
    uid = tenant.emulator.create_event(
        BO, [BO, CY], "Bo / Cy", start, start + timedelta(minutes=30)
    )
    assert tenant.emulator.wait_for_notifications()
    assert all(n.status == 202 for n in tenant.emulator.notifications)
    tenant.wait_marked(BO, CY)
    tenant.now += timedelta(seconds=3)

    first = tenant.tick()

    assert first.writes == 1 and tenant.block_of(BO, uid) is not None
    assert tenant.emulator.wait_for_notifications()
    tenant.wait_marked(BO)  # the echo of our own write
    # The echoes (Bo's copy, Cy's propagated copy) are synced and change nothing;
    # within a few rounds the tenant is quiet: no write answers a notification of ours.
    for _ in range(4):
        tenant.now += timedelta(seconds=3)
        report = tenant.tick()
        assert report.writes == 0
        if report.calendars == 0:
            break
        assert tenant.emulator.wait_for_notifications()
        time.sleep(0.3)  # Graph's notifications are judged just after the 202
    else:
        raise AssertionError("syncd keeps syncing: notifications of its own writes ping-pong")


def test_missed_forces_a_resync_and_reauthorization_renews(tenant: Org) -> None:
    seed(tenant)
    tenant.sync_all()
    subscribe_everyone(tenant)

    tenant.emulator.faults.lifecycle(CY, "missed")
    tenant.emulator.faults.lifecycle(DEE, "reauthorizationRequired")
    assert tenant.emulator.wait_for_notifications()
    tenant.wait_marked(CY)
    tenant.now += timedelta(seconds=3)

    synced = tenant.tick()
    assert synced.calendars == 1 and synced.errors == []  # Cy's calendar
    with transaction(tenant.factory) as session:
        dee = session.scalars(select(Calendar).where(Calendar.address == DEE)).one().id
    deadline = time.monotonic() + 5  # judged after the 202: wait for it
    while time.monotonic() < deadline:
        with transaction(tenant.factory) as session:
            channel = session.scalars(
                select(PushChannel).where(PushChannel.calendar_id == dee)
            ).one()
            if channel.expires <= tenant.now:
                break
        time.sleep(0.02)
    before = len([r for r in tenant.emulator.requests if r.op == "subscribe"])
    renewed = push.keep_open(
        tenant.factory,
        tenant.syncer.provider,
        dee,
        DEE,
        tenant.webhook,
        timedelta(days=2),
        tenant.now,
    )
    assert renewed is not None
    assert len([r for r in tenant.emulator.requests if r.op == "subscribe"]) == before + 1


def test_a_concurrent_edit_in_outlook_survives(tenant: Org) -> None:
    events = seed(tenant)
    weekly, first = events["weekly"]
    copy = tenant.emulator.copy_id(ANA, weekly, first)

    def ana_types(calendar: str, event_id: str) -> None:
        if event_id == copy:
            body = tenant.emulator.description(calendar, event_id)
            tenant.emulator.edit_description(calendar, event_id, body + "<p>Ana, just now</p>")

    tenant.emulator.faults.before_patch(ana_types, times=1)
    report = tenant.sync_all()

    body = tenant.emulator.description(ANA, copy)
    assert "Ana, just now" in body and block.extract(body) is not None
    assert report.conflicts == 1


def test_a_refresh_costs_one_delta_and_one_patch(tenant: Org) -> None:
    """Graph too writes on the text delta returned (If-Match its change key): no GET first."""
    uid, first = seed(tenant)["weekly"]
    tenant.sync_all()
    tenant.sync_all()
    tenant.add_point(uid, first, "Hiring plan", BO)
    tenant.sync_all()  # days ahead: on Outlook the talking point waits for the refresh
    assert "Hiring plan" not in (tenant.block_of(ANA, uid, first) or "")
    sent = len(tenant.emulator.requests)

    tenant.now = first - timedelta(hours=1)  # within the refresh lead
    report = tenant.syncer.sync(ANA, tenant.now)

    assert report.writes == 1 and "Hiring plan (bo)" in (tenant.block_of(ANA, uid, first) or "")
    assert tenant.calls_since(sent) == ["delta", "patch"]
    assert tenant.emulator.requests[-1].headers.get("if-match")


def test_a_410_recovers(tenant: Org) -> None:
    seed(tenant)
    tenant.sync_all()
    for person in PEOPLE:
        tenant.emulator.faults.expire_delta_tokens(person)

    report = tenant.sync_all()

    assert report.full_syncs == 5 and report.errors == [] and report.writes == 0


def test_one_disabled_mailbox_leaves_the_other_four_synced(tenant: Org) -> None:
    events = seed(tenant)
    tenant.emulator.disable_user(EVE)

    report = tenant.sync_all()

    assert len(report.errors) == 1 and EVE in report.errors[0]
    assert tenant.block_of(ANA, *events["weekly"]) is not None
    assert tenant.block_of(CY, *events["biweekly"]) is not None
    with transaction(tenant.factory) as session:
        eve = session.scalars(select(Calendar).where(Calendar.address == EVE)).one()
        assert eve.needs_reauth


def test_a_pair_split_across_google_and_outlook_shares_one_agenda(db_engine: Engine) -> None:
    """Ana is on Google, Bo on Outlook; both systems hold their copies of their 1:1s."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    factory = sessions(db_engine)
    start = now + timedelta(days=1)
    with GoogleEmulator([ANA]) as google, GraphEmulator([BO]) as graph:
        delegating = service_account.Credentials.from_service_account_info(
            google.service_account_info(), scopes=list(GOOGLE_SCOPES)
        )
        gsync = CalendarSync(
            GoogleProvider([ANA], delegating.with_subject, api_root=google.api_root),
            factory, policy(), account="google", sleep=lambda s: None,
        )  # fmt: skip
        outlook = graph_provider(graph, (BO,))
        msync = CalendarSync(outlook, factory, policy(), account="m365", sleep=lambda s: None)

        # Ana's 1:1 with Bo, organized in Google: Bo's Outlook holds an invited copy
        uid = "ana-bo-weekly@example.org"
        google.create_event(
            ANA, [ANA, BO], "Ana / Bo", start, start + timedelta(minutes=30), ical_uid=uid
        )
        graph.create_event(
            ANA, [ANA, BO], "Ana / Bo", start, start + timedelta(minutes=30), ical_uid=uid
        )
        gsync.sync(ANA, now)
        msync.sync(BO, now)
        with transaction(factory) as session:
            meetings = session.scalars(select(Meeting)).all()
            assert len(meetings) == 1  # both systems' copies found the same agenda
            meeting = meetings[0]
            assert (meeting.ical_uid, meeting.original_start) == (uid, SINGLE_EVENT)
            agenda.add_action_item(
                session, meeting, "share the Q3 deck", owner=BO, author=ANA, now=now
            )

        # Later Bo books a follow-up in Outlook: same pair, same open items
        later = start + timedelta(days=2)
        follow_up = graph.create_event(
            BO, [BO, ANA], "follow-up", later, later + timedelta(minutes=20)
        )
        now += timedelta(days=1, hours=1)  # the first 1:1 is over
        msync.sync(BO, now)
        text = block.extract(graph.description(BO, graph.copy_id(BO, follow_up)))
        assert text is not None and "share the Q3 deck" in text
        with transaction(factory) as session:
            assert len(session.scalars(select(Pair)).all()) == 1
        outlook.close()


def test_the_webhook_answers_202_at_once_even_while_the_database_is_busy(
    tenant: Org, db_engine: Engine
) -> None:
    import httpx
    from sqlalchemy import text

    seed(tenant)
    tenant.sync_all()
    subscribe_everyone(tenant)
    with transaction(tenant.factory) as session:
        channel = session.scalars(select(PushChannel)).first()
        assert channel is not None
        subscription = channel.channel_id
    body = {"value": [{"subscriptionId": subscription, "clientState": "not-the-token"}]}

    with db_engine.connect() as blocker:
        # Hold the write lock that judging the notification would need.
        if db_engine.dialect.name == "sqlite":
            blocker.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            blocker.execute(text("LOCK TABLE calendars IN ACCESS EXCLUSIVE MODE"))
        # Answered while the lock is still held: a webhook that waited for the
        # database would time out here instead.
        answer = httpx.post(tenant.webhook, json=body, timeout=5)
        blocker.rollback()

    assert answer.status_code == 202
