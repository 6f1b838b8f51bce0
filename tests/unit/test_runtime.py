"""The scheduler loop of ``syncd run``, in process: one calendar's crash stays its own."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from providers.base import Channel
from providers.memory import MemoryOptions, MemoryProvider
from providers.model import ChangePage, Window
from syncd import assemble, config, scheduler
from syncd.engine import CalendarSync, Report
from syncd.runtime import WebServer, Worker, refresh_directories
from syncd.store import sessions, transaction
from syncd.store.models import Calendar, Meeting
from tests.unit.world import ANA, BO, CY, PEOPLE, World, tuesday, weekly

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)


class Broken(MemoryProvider):
    """Bo's calendar trips over a bug (not a provider error) on every read."""

    def changes(self, calendar: str, cursor: str | None, window: Window) -> Iterator[ChangePage]:
        if calendar == BO:
            raise RuntimeError("parser bug")
        return super().changes(calendar, cursor, window)


def test_a_crashing_calendar_is_recorded_and_backed_off_while_the_others_sync(
    db_engine: Engine,
) -> None:
    world = World(db_engine, provider=Broken(PEOPLE))
    uid = weekly(world, ANA, CY)
    factory = sessions(db_engine)
    syncer = CalendarSync(world.provider, factory, world.policy, account="acme")
    scheduler.enroll(factory, "acme", "memory", PEOPLE)
    synced: list[tuple[str, Report]] = []
    worker = Worker(
        factory,
        {"acme": syncer},
        {},
        config.Sync(concurrency=2),
        owner="w",
        clock=lambda: NOW,
        on_sync=lambda account, calendar, report: synced.append((calendar, report)),
    )
    for _ in range(20):
        worker.step(0.2)
        if len(synced) == len(PEOPLE):
            break
    worker.drain()

    assert sorted(calendar for calendar, _ in synced) == sorted(PEOPLE)
    assert world.block_in(ANA, uid, world.now + timedelta(days=1, hours=2)) is not None
    with transaction(factory) as session:
        rows = {row.address: row for row in session.scalars(select(Calendar))}
    assert rows[BO].last_error == "RuntimeError: parser bug"
    assert rows[BO].next_sync_at == NOW + timedelta(minutes=1)  # backed off, not hot-looping
    assert rows[ANA].last_error is None and rows[ANA].last_sync_at == NOW
    assert rows[CY].last_error is None and rows[CY].last_sync_at == NOW
    assert {row.lease_owner for row in rows.values()} == {None}
    assert worker.totals.errors == 1 and worker.totals.writes >= 1


class Hanging(MemoryProvider):
    """Every read waits until released: an account whose API stopped answering."""

    def __init__(self, calendars: list[str], release: threading.Event) -> None:
        super().__init__(calendars)
        self.release = release

    def changes(self, calendar: str, cursor: str | None, window: Window) -> Iterator[ChangePage]:
        self.release.wait(30)
        return super().changes(calendar, cursor, window)


def test_an_account_that_hangs_does_not_hold_up_another(db_engine: Engine) -> None:
    world = World(db_engine)
    factory = sessions(db_engine)
    release = threading.Event()
    stuck = ["x1@stuck.example", "x2@stuck.example"]
    syncers = {
        "stuck": CalendarSync(Hanging(stuck, release), factory, world.policy, account="stuck"),
        "acme": CalendarSync(world.provider, factory, world.policy, account="acme"),
    }
    scheduler.enroll(factory, "stuck", "memory", stuck)
    scheduler.enroll(factory, "acme", "memory", PEOPLE)
    synced: list[str] = []
    worker = Worker(
        factory,
        syncers,
        {},
        config.Sync(concurrency=2),
        owner="w",
        clock=lambda: NOW,
        on_sync=lambda account, calendar, report: synced.append(calendar),
    )
    try:
        for _ in range(40):
            worker.step(0.1)
            if set(PEOPLE) <= set(synced):
                break
        assert set(PEOPLE) <= set(synced)  # all of acme's, one at a time in the other slot
        assert not set(stuck) & set(synced)
    finally:
        release.set()
        worker.drain()
    assert set(synced) >= {stuck[0]}


class Staff(MemoryProvider):
    """A memory provider whose ``calendars()`` is the organization's directory right now."""

    def __init__(self, people: list[str]) -> None:
        super().__init__(people)
        self.directory = list(people)

    def calendars(self) -> list[str]:
        return list(self.directory)


def test_a_directory_refresh_enrolls_joiners_and_stops_claiming_leavers(
    db_engine: Engine,
) -> None:
    world = World(db_engine)
    factory = sessions(db_engine)
    staff = Staff([ANA, BO])
    account = config.Account(
        name="acme", provider="memory", options=MemoryOptions(), calendars=(), directory=True
    )
    conn = assemble.Connected(account, staff, staff.calendars())
    scheduler.enroll(factory, "acme", "memory", conn.calendars)
    synced: list[str] = []
    worker = Worker(
        factory,
        {"acme": CalendarSync(staff, factory, world.policy, account="acme")},
        {},
        config.Sync(),
        owner="w",
        clock=lambda: NOW,
        on_sync=lambda account, calendar, report: synced.append(calendar),
    )
    worker.watching = {"acme": frozenset(conn.calendars)}

    staff.add_calendar(CY)
    staff.directory = [ANA, CY]  # Cy joined, Bo left
    refresh_directories(factory, worker, {"acme": conn})
    for _ in range(10):
        worker.step(0.1)
    worker.drain()

    assert sorted(synced) == sorted([ANA, CY])
    with transaction(factory) as session:
        rows = {row.address for row in session.scalars(select(Calendar))}
    assert rows == {ANA, BO, CY}  # Bo's row (and history) stays; only syncing stops


class BuggyWatch(MemoryProvider):
    """Push is on, but opening a channel trips over a bug (not a provider error)."""

    def watch(
        self, calendar: str, address: str, channel_id: str, token: str, ttl: timedelta
    ) -> Channel:
        raise KeyError("resourceId")

    def stop(self, channel: Channel) -> None:
        return None


def test_a_bug_opening_a_push_channel_leaves_syncing_alone(db_engine: Engine) -> None:
    world = World(db_engine, provider=BuggyWatch(PEOPLE))
    uid = weekly(world, ANA, BO)
    factory = sessions(db_engine)
    scheduler.enroll(factory, "acme", "memory", PEOPLE)
    synced: list[str] = []
    worker = Worker(
        factory,
        {"acme": CalendarSync(world.provider, factory, world.policy, account="acme")},
        {"acme": "https://agenda.example.org/hooks/google"},
        config.Sync(),
        owner="w",
        clock=lambda: NOW,
        on_sync=lambda account, calendar, report: synced.append(calendar),
    )
    for _ in range(20):
        worker.step(0.1)
        if len(synced) == len(PEOPLE):
            break
    worker.drain()

    assert sorted(synced) == sorted(PEOPLE)
    assert world.block_in(ANA, uid, world.now + timedelta(days=1, hours=2)) is not None
    assert worker.totals.errors == 0  # the sync itself went fine; polling covers for push


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_web_server_that_ends_unasked_stops_the_daemon_and_one_asked_does_not() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    stop = threading.Event()
    crashing = WebServer(app, "127.0.0.1", _free_port())
    assert crashing.start()
    died = crashing.supervise(stop)
    crashing.server.should_exit = True  # uvicorn ends on its own, nobody asked
    assert stop.wait(10) and died.is_set()

    calm = threading.Event()
    asked = WebServer(app, "127.0.0.1", _free_port())
    assert asked.start()
    quiet = asked.supervise(calm)
    asked.stop()
    asked.watcher.join(10)  # the watcher has seen the server end
    assert not asked.watcher.is_alive()
    assert not calm.is_set() and not quiet.is_set()


def test_an_edit_wakes_the_idle_loop_when_its_mark_is_due(db_engine: Engine) -> None:
    """The scheduler need not poll every second for what this very process just marked."""
    import time

    from starlette.testclient import TestClient

    from syncd.web.app import create_app

    world = World(db_engine)
    uid = weekly(world, ANA, BO)
    began, origin = time.monotonic(), world.now

    def clock() -> datetime:  # the world's time, running at the speed of the real one
        return origin + timedelta(seconds=time.monotonic() - began)

    factory = sessions(db_engine)
    syncer = CalendarSync(world.provider, factory, world.policy, account="acme")
    scheduler.enroll(factory, "acme", "memory", PEOPLE)
    synced: list[str] = []
    worker = Worker(
        factory, {"acme": syncer}, {}, config.Sync(), owner="w", clock=clock,
        on_sync=lambda account, calendar, report: synced.append(calendar),
    )  # fmt: skip
    while len(synced) < len(PEOPLE):
        worker.step(0.05)
    with transaction(factory) as session:
        token = session.scalars(select(Meeting.token).order_by(Meeting.start)).first()
    app = TestClient(
        create_app(factory, clock=clock, on_mark=worker.nudge), base_url="https://testserver"
    )
    csrf = app.get(f"/api/v1/meetings/{token}").headers["X-CSRF-Token"]

    # nothing is due for minutes: the loop would idle the whole 600 s unless woken
    idle = threading.Thread(target=worker.step, args=(600.0,), daemon=True)
    idle.start()
    try:
        added = app.post(
            f"/api/v1/meetings/{token}/talking-points",
            json={"text": "Offsite plans"},
            headers={"X-CSRF-Token": csrf},
        )
        assert added.status_code == 201
        idle.join(60)
        assert not idle.is_alive(), "the edit's mark did not wake the idle loop"
    finally:
        worker.nudge(0)  # never leave the loop asleep behind a failed test
        idle.join(10)

    before = len(synced)
    while len(synced) == before:
        worker.step(0.05)
    worker.drain()
    assert synced[before:] == [ANA]  # the organizer's calendar, marked by the edit
    assert "Offsite plans" in (world.block_in(ANA, uid, tuesday(0)) or "")


def test_a_later_nudge_still_wakes_the_idle_loop_after_an_earlier_one(db_engine: Engine) -> None:
    """Two pushes a moment apart: each mark wakes the loop when it falls due.

    One wake time kept as the earliest of all would be used up by the first,
    leaving the second mark to the idle loop's own poll.
    """
    import time

    world = World(db_engine)
    factory = sessions(db_engine)
    syncer = CalendarSync(world.provider, factory, world.policy, account="acme")
    worker = Worker(factory, {"acme": syncer}, {}, config.Sync(), owner="w", clock=lambda: NOW)
    worker.nudge(0.05)
    worker.nudge(0.4)
    began = time.monotonic()
    worker.step(30.0)  # nothing enrolled: nothing to claim, so it idles until woken
    first = time.monotonic() - began
    worker.step(30.0)
    second = time.monotonic() - began
    worker.drain()
    assert first < 10, "the first nudge did not wake the idle loop"
    assert 0.4 <= second < 10, "the second nudge was forgotten once the first had woken us"
