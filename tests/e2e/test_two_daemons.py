"""Two ``syncd run`` daemons, each with its own database and key, on one organization.

What an admin would see when a second installation (a test instance, a
restore beside the original) is pointed at the calendars production
serves: neither ever writes the other's occurrences, both settle, and both
say so (``other-installation`` in their metrics and ``syncd status``).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from providers.emulators.google import GoogleEmulator
from providers.memory import Recurrence
from syncd import block
from syncd.store import connect, sessions, transaction
from syncd.store.models import Calendar
from tests.e2e.daemon import ROOT, Daemon, free_port, google_config, wait_until

ANA, BO, CY = (f"{n}@example.org" for n in ("ana", "bo", "cy"))
PEOPLE = (ANA, BO, CY)
SKIPPED = re.compile(r'syncd_skipped_events_total\{reason="other-installation"\} ([0-9.]+)')


@pytest.fixture
def emulator() -> Iterator[GoogleEmulator]:
    with GoogleEmulator(PEOPLE) as emulator:
        yield emulator


def patches(emulator: GoogleEmulator) -> int:
    return sum(1 for r in emulator.requests if r.method == "PATCH")


def other_installation_skips(port: int) -> float:
    found = SKIPPED.search(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
    return float(found[1]) if found else 0.0


def sync_now(database: Path) -> None:
    """Make every calendar of that installation due, as a poll interval ending would."""
    engine = connect(f"sqlite:///{database}")
    with transaction(sessions(engine)) as session:
        session.execute(update(Calendar).values(next_sync_at=datetime.now(UTC)))
    engine.dispose()


def test_two_daemons_settle_and_never_write_each_others_occurrences(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=1)
    weekly = emulator.create_event(
        ANA, [ANA, BO], "Ana / Bo", start, start + timedelta(minutes=30), recurrence=Recurrence(7)
    )
    installs = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        port = free_port()
        database = folder / "syncd.db"
        config = google_config(
            folder, emulator, PEOPLE, database=f"sqlite:///{database}", port=port, key_file=True
        )
        installs.append((config, port, database))
    (first_config, first_port, first_db), (second_config, second_port, second_db) = installs

    first = Daemon(first_config, name="first")
    try:
        first.wait_ready()
        wait_until(lambda: set(first.synced()) == set(PEOPLE), 60, "the first's pass", first)
        text = block.extract(emulator.description(ANA, emulator.copy_id(ANA, weekly, start)))
        assert text is not None
        first_link = re.search(r"/m/\S+", text)
        assert first_link is not None and f":{first_port}/m/" in text
        written = patches(emulator)
        assert written == 2  # the next two weekly occurrences

        second = Daemon(second_config, name="second")
        try:
            second.wait_ready()
            wait_until(lambda: set(second.synced()) == set(PEOPLE), 60, "the second", second)
            assert patches(emulator) == written
            assert other_installation_skips(second_port) >= 2

            # A 1:1 created while only the second runs is the second's.
            assert first.terminate() == 0
            adhoc_start = start + timedelta(days=2)
            adhoc = emulator.create_event(
                CY, [CY, BO], "Cy / Bo", adhoc_start, adhoc_start + timedelta(minutes=30)
            )
            seen = len(second.synced())
            sync_now(second_db)
            wait_until(lambda: len(second.synced()) >= seen + 3, 60, "the second again", second)
            assert patches(emulator) == written + 1
            theirs = block.extract(emulator.description(CY, emulator.copy_id(CY, adhoc)))
            assert theirs is not None and f":{second_port}/m/" in theirs

            again = Daemon(first_config, name="first-again")
            try:
                again.wait_ready()
                sync_now(first_db)
                wait_until(lambda: set(again.synced()) == set(PEOPLE), 60, "the first", again)
                # Both settled: more passes of both, and not one more write.
                seen = len(second.synced())
                sync_now(first_db)
                sync_now(second_db)
                wait_until(lambda: len(again.synced()) >= 6, 60, "the first twice", again)
                wait_until(lambda: len(second.synced()) >= seen + 3, 60, "the second", second)
                assert patches(emulator) == written + 1
                assert other_installation_skips(first_port) >= 1
                assert other_installation_skips(second_port) >= 2
                # each link opens at its own installation
                token = re.search(r"/m/(\S+)", theirs)
                assert token is not None
                base = f"http://127.0.0.1:{{}}/m/{token[1]}"
                assert httpx.get(base.format(second_port)).status_code == 200
                assert httpx.get(base.format(first_port)).status_code == 404
                assert again.terminate(signal.SIGTERM) == 0
            finally:
                again.close()
            assert second.terminate(signal.SIGTERM) == 0
        finally:
            second.close()
    finally:
        first.close()

    status = subprocess.run(
        [sys.executable, "-m", "syncd", "status", "-c", str(first_config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "1 OF ANOTHER INSTALLATION" in status.stdout, status.stdout
