"""``syncd run`` as systemd runs it: READY, blocks, SIGTERM mid-sync, a restart that writes nothing.

The daemon is a real subprocess talking to the Google emulator over
loopback, on a SQLite file, serving its pages on a port of its own.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from providers.emulators.google import GoogleEmulator
from providers.memory import Recurrence
from syncd import block
from syncd.store import connect, sessions, transaction
from syncd.store.models import Calendar
from tests.e2e.daemon import Daemon, free_port, google_config, wait_until

ANA, BO, CY, DEE = (f"{n}@example.org" for n in ("ana", "bo", "cy", "dee"))
PEOPLE = (ANA, BO, CY, DEE)


@pytest.fixture
def emulator() -> Iterator[GoogleEmulator]:
    with GoogleEmulator(PEOPLE) as emulator:
        yield emulator


def _block(
    emulator: GoogleEmulator, calendar: str, uid: str, start: datetime | None = None
) -> str | None:
    return block.extract(emulator.description(calendar, emulator.copy_id(calendar, uid, start)))


def _patches(emulator: GoogleEmulator) -> list[str]:
    return [r.path for r in emulator.requests if r.method == "PATCH"]


def test_run_serves_syncs_stops_cleanly_on_sigterm_and_restarts_without_writes(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now + timedelta(days=1)
    weekly = emulator.create_event(
        ANA, [ANA, BO], "Ana / Bo", start, start + timedelta(minutes=30), recurrence=Recurrence(7)
    )
    emulator.create_event(ANA, list(PEOPLE), "Team", start, start + timedelta(hours=1))
    port = free_port()
    database = tmp_path / "syncd.db"
    config = google_config(tmp_path, emulator, PEOPLE, database=f"sqlite:///{database}", port=port)

    daemon = Daemon(config)
    try:
        daemon.wait_ready()
        text = wait_until(lambda: _block(emulator, ANA, weekly, start), 60, "a block", daemon)
        token = re.search(r"/m/([A-Za-z0-9_-]+)", text)
        assert token is not None
        page = httpx.get(f"http://127.0.0.1:{port}/m/{token[1]}")
        assert page.status_code == 200 and "Ana / Bo" in page.text
        wait_until(lambda: set(daemon.synced()) == set(PEOPLE), 60, "every calendar", daemon)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").json() == {"status": "ready"}
        exposition = httpx.get(f"{base}/metrics").text
        assert re.search(r'syncd_syncs_total\{outcome="ok",provider="google"\} [1-9]', exposition)
        assert re.search(r'syncd_writes_total\{provider="google"\} [1-9]', exposition)
        assert re.search(r'syncd_provider_calls_total\{[^}]*method="changes"', exposition)
        assert token[1] not in exposition and ANA not in exposition
        assert daemon.notified("WATCHDOG", "1")
        assert daemon.notified("STATUS")

        # A new 1:1 arrives while requests are slow; SIGTERM lands mid-sync.
        adhoc_start = start + timedelta(days=2)
        adhoc = emulator.create_event(
            CY, [CY, DEE], "Cy / Dee", adhoc_start, adhoc_start + timedelta(minutes=30)
        )
        emulator.faults.latency(0.3)
        factory = sessions(connect(f"sqlite:///{database}"))
        with transaction(factory) as session:
            session.execute(update(Calendar).values(next_sync_at=datetime.now(UTC)))

        def leased() -> bool:
            with transaction(factory) as session:
                return bool(
                    session.scalars(select(Calendar).where(Calendar.lease_owner.is_not(None))).all()
                )

        wait_until(leased, 30, "a sync in flight", daemon)
        assert daemon.terminate(signal.SIGTERM) == 0
        assert daemon.notified("STOPPING", "1")
        assert "Traceback" not in daemon.log()
    finally:
        daemon.close()

    # Nothing half-done: no lease left behind, every calendar has its cursor,
    # and the 1:1 that arrived mid-sync has its block.
    emulator.faults.latency(0)
    with transaction(factory) as session:
        rows = session.scalars(select(Calendar)).all()
        assert [row.lease_owner for row in rows] == [None] * len(PEOPLE)
        assert all(row.cursor for row in rows)
    assert _block(emulator, CY, adhoc) is not None
    written = len(_patches(emulator))

    again = Daemon(config, name="again")
    try:
        again.wait_ready()
        with transaction(factory) as session:
            session.execute(update(Calendar).values(next_sync_at=datetime.now(UTC)))
        wait_until(lambda: set(again.synced()) == set(PEOPLE), 60, "every calendar again", again)
        assert len(_patches(emulator)) == written  # the restart found nothing to write
        assert again.terminate(signal.SIGTERM) == 0
    finally:
        again.close()


def test_run_opens_channels_writes_on_push_alone_and_stops_channels_when_asked(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    port = free_port()
    config = google_config(
        tmp_path,
        emulator,
        PEOPLE,
        database=f"sqlite:///{tmp_path / 'syncd.db'}",
        port=port,
        push=True,  # and polling only hourly: a write now can only come from a push
    )

    def requests(suffix: str) -> int:
        return sum(1 for r in emulator.requests if r.method == "POST" and r.path.endswith(suffix))

    daemon = Daemon(config, "--stop-channels")
    try:
        daemon.wait_ready()
        wait_until(lambda: requests("/events/watch") == len(PEOPLE), 60, "a channel each", daemon)
        wait_until(lambda: set(daemon.synced()) == set(PEOPLE), 60, "every calendar", daemon)

        start = datetime.now(UTC) + timedelta(days=1)
        uid = emulator.create_event(CY, [CY, DEE], "Cy / Dee", start, start + timedelta(minutes=30))
        text = wait_until(lambda: _block(emulator, CY, uid), 60, "the pushed 1:1's block", daemon)
        assert "/m/" in text
        assert daemon.terminate(signal.SIGTERM) == 0
    finally:
        daemon.close()
    assert requests("/channels/stop") == len(PEOPLE)
