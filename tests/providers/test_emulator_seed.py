"""The emulators run alone on a world of their own (`--seed FILE`), for explain and sync-once.

The emulator is a real subprocess, as an admin would start it; syncd talks to
it with the service-account file the emulator wrote, from a config file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.emulators import _cli
from providers.emulators.graph import GraphEmulator
from syncd.cli import main

ANA, BO, CY = "ana@example.org", "bo@example.org", "cy@example.org"
SEED = {
    "users": [CY],
    "events": [
        {"organizer": ANA, "attendees": [BO], "title": "Ana / Bo", "in_days": 1, "at": "10:00",
         "minutes": 30, "every_days": 7, "description": "bring the numbers"},
        {"organizer": BO, "attendees": [ANA, CY], "title": "Planning", "in_days": 2, "at": "14:00",
         "minutes": 60},
    ],
}  # fmt: skip


@pytest.fixture
def seeded_google(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    seed = tmp_path / "world.json"
    seed.write_text(json.dumps(SEED))
    key = tmp_path / "sa.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "providers.emulators.google", "--seed", str(seed)]
        + ["--service-account", str(key)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base = process.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        yield base, key
    finally:
        process.terminate()
        process.wait(10)


def test_a_seeded_google_emulator_serves_explain_and_sync_once(
    seeded_google: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, key = seeded_google
    assert key.stat().st_mode & 0o777 == 0o600
    config = tmp_path / "syncd.toml"
    config.write_text(
        '[syncd]\ndatabase = "sqlite:///syncd.db"\n'
        '[detect]\norg_domains = ["example.org"]\n'
        '[[accounts]]\nname = "trial"\nprovider = "google"\n'
        f'service_account_file = "{key}"\napi_root = "{base.rstrip("/")}/calendar/v3/"\n'
        f"calendars = {json.dumps([ANA, BO, CY])}\n"
    )

    assert main(["explain", "-c", str(config), "--calendar", ANA]) == 0
    out = capsys.readouterr().out
    assert "Ana / Bo" in out and "one-on-one" in out
    assert "Planning" in out and "more-than-two-people" in out

    assert main(["sync-once", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "writes: 2" in out and "errors: none" in out


def test_a_seed_mistake_is_one_line_naming_the_event_and_field(tmp_path: Path) -> None:
    seed = tmp_path / "world.json"
    seed.write_text(json.dumps({"events": [{"organizer": ANA, "start": "tomorrow"}]}))
    result = subprocess.run(
        [sys.executable, "-m", "providers.emulators.graph", "--seed", str(seed)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "events[0].start" in result.stderr and "tomorrow" in result.stderr


def test_both_emulators_read_the_same_seed(tmp_path: Path) -> None:
    seed = tmp_path / "world.json"
    seed.write_text(json.dumps(SEED))
    users, events = _cli.read_seed(seed, datetime(2030, 1, 7, tzinfo=UTC))
    assert users == [CY, ANA, BO]
    assert events[0].start == datetime(2030, 1, 8, 10, tzinfo=UTC)
    with GraphEmulator(users) as graph:
        weekly, planning = _cli.seed(graph, events)
        copy = graph.copy_id(BO, weekly, events[0].start)
        assert "bring the numbers" in graph.description(BO, copy)
        assert graph.copy_id(CY, planning)  # every attendee holds a copy
