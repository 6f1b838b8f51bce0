"""Three ``syncd run --role worker`` processes sharing one PostgreSQL database.

Workers lease due calendars with ``SELECT … FOR UPDATE SKIP LOCKED``. Every
due calendar must be synced exactly once per cycle, by whichever worker got
it; a worker killed with SIGKILL must lose nothing: its calendars are taken
over once its leases run out, and no event is ever written twice.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.engine import make_url

from providers.emulators.google import GoogleEmulator
from providers.memory import Recurrence
from syncd.store import connect, sessions, transaction
from syncd.store.models import Calendar
from tests.conftest import POSTGRES_URL
from tests.e2e.daemon import Daemon, count, free_port, google_config, wait_until

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL, reason="needs SYNCD_TEST_POSTGRES_URL (.ci/run starts a server)"
)

PEOPLE = tuple(f"p{i:02d}@example.org" for i in range(12))
PAIRS = [(PEOPLE[i], PEOPLE[i + 1]) for i in range(0, len(PEOPLE), 2)]
LEASE_SECONDS = 4


@pytest.fixture
def database() -> Iterator[str]:
    """A database of its own: the workers are separate processes with their own URL."""
    name = f"syncd_w_{uuid.uuid4().hex[:10]}"
    admin = connect(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def _patched(emulator: GoogleEmulator) -> dict[str, int]:
    """How often each event was written."""
    return count([r.path for r in emulator.requests if r.method == "PATCH"])


def _mark_all_due(engine: Engine) -> None:
    with transaction(sessions(engine)) as session:
        session.execute(update(Calendar).values(next_sync_at=datetime.now(UTC)))


def _synced(workers: list[Daemon]) -> dict[str, int]:
    return count([calendar for worker in workers for calendar in worker.synced()])


def test_three_workers_sync_each_due_calendar_once_and_survive_a_sigkill(
    database: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now + timedelta(days=1)
    with GoogleEmulator(PEOPLE) as emulator:
        for n, (a, b) in enumerate(PAIRS):
            begin = start + timedelta(hours=n)
            emulator.create_event(
                a, [a, b], f"{a} / {b}", begin, begin + timedelta(minutes=30),
                recurrence=Recurrence(7),
            )  # fmt: skip
        config = google_config(
            tmp_path,
            emulator,
            PEOPLE,
            database=database,
            port=free_port(),
            sync={"lease_seconds": LEASE_SECONDS, "concurrency": 2},
        )
        engine = connect(database)
        workers = [Daemon(config, "--role", "worker", name=f"w{i}") for i in range(3)]
        try:
            for worker in workers:
                worker.wait_ready()

            # Cycle 1: every calendar is new, so due; each synced exactly once.
            wait_until(lambda: len(_synced(workers)) == len(PEOPLE), 90, "first cycle")
            wait_until(lambda: _leases(engine) == {}, 30, "leases given back")
            assert _synced(workers) == dict.fromkeys(PEOPLE, 1)
            first_writes = _patched(emulator)
            assert len(first_writes) == 2 * len(PAIRS)  # two occurrences in the horizon
            assert set(first_writes.values()) == {1}
            assert sum(1 for worker in workers if worker.synced()) >= 2  # work was shared

            # Cycle 2: everything marked due once more; once more each, no writes.
            _mark_all_due(engine)
            wait_until(lambda: set(_synced(workers).values()) == {2}, 90, "second cycle")
            wait_until(lambda: _leases(engine) == {}, 30, "leases given back")
            assert _synced(workers) == dict.fromkeys(PEOPLE, 2)
            assert _patched(emulator) == first_writes

            # Cycle 3: a new ad-hoc 1:1 per pair, slow requests, and one worker
            # is SIGKILLed while it holds leases.
            new_events = []
            for n, (a, b) in enumerate(PAIRS):
                begin = start + timedelta(days=2, hours=n)
                new_events.append(
                    emulator.create_event(
                        b, [b, a], "catch-up", begin, begin + timedelta(minutes=20)
                    )
                )
            emulator.faults.latency(0.4)
            _mark_all_due(engine)
            victim, owner_calendars = wait_until(
                lambda: _holder(engine, workers), 60, "a worker holding leases"
            )
            os.kill(victim.pid, signal.SIGKILL)
            victim.proc.wait(10)
            survivors = [w for w in workers if w is not victim]

            def taken_over() -> bool:
                with transaction(sessions(engine)) as session:
                    rows = session.scalars(select(Calendar)).all()
                    return all(row.next_sync_at is None and row.lease_owner is None for row in rows)

            wait_until(taken_over, 120, "the killed worker's calendars taken over")
            emulator.faults.latency(0)
            survived = _synced(survivors)
            assert all(survived.get(calendar, 0) >= 1 for calendar in owner_calendars)
            writes = _patched(emulator)
            assert set(writes.values()) == {1}  # no event was ever written twice
            assert len(writes) == len(first_writes) + len(new_events)
            for worker in survivors:
                assert worker.terminate(signal.SIGTERM) == 0
        finally:
            for worker in workers:
                worker.close()
            engine.dispose()


def _leases(engine: Engine) -> dict[str, str]:
    with transaction(sessions(engine)) as session:
        return {
            row.address: str(row.lease_owner)
            for row in session.scalars(select(Calendar).where(Calendar.lease_owner.is_not(None)))
        }


def _holder(engine: Engine, workers: list[Daemon]) -> tuple[Daemon, set[str]] | None:
    """A worker that holds at least one lease right now, and the calendars it holds."""
    leases = _leases(engine)
    for worker in workers:
        mine = {address for address, owner in leases.items() if f":{worker.pid}:" in owner}
        if mine:
            return worker, mine
    return None
