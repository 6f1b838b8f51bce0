"""The emulators run alone on a world of their own (`--seed FILE`), for explain and sync-once.

The emulator is a real subprocess, as an admin would start it; syncd talks to
it with the service-account file the emulator wrote, from a config file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
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


@contextmanager
def seeded(service: str, folder: Path, *options: str) -> Iterator[str]:
    """``python -m providers.emulators.<service> --seed …`` as an admin starts it; its base URL."""
    seed = folder / "world.json"
    seed.write_text(json.dumps(SEED))
    process = subprocess.Popen(
        [sys.executable, "-m", f"providers.emulators.{service}", "--seed", str(seed), *options],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base = process.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        yield base
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def seeded_google(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    key = tmp_path / "sa.json"
    with seeded("google", tmp_path, "--service-account", str(key)) as base:
        yield base, key


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


def test_events_inserted_over_http_are_synced_like_any_other(tmp_path: Path) -> None:
    """What an admin's script would do to a running emulator: insert, then sync."""
    import httpx
    from google.oauth2 import service_account
    from googleapiclient.discovery import build

    from providers.emulators.google import GoogleEmulator
    from providers.google.calendar import GoogleProvider
    from providers.google.grant import SCOPES as GOOGLE_SCOPES
    from tests.e2e.test_microsoft_tenant import graph_provider
    from tests.providers.contract import WINDOW

    start = WINDOW.start + timedelta(days=2)
    google_body = {
        "summary": "Ana / Bo",
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": (start + timedelta(minutes=30)).isoformat()},
        "attendees": [{"email": BO}],
        "recurrence": ["RRULE:FREQ=WEEKLY;INTERVAL=1;COUNT=3"],
    }
    with GoogleEmulator([ANA, BO]) as google:
        delegating = service_account.Credentials.from_service_account_info(
            google.service_account_info(), scopes=list(GOOGLE_SCOPES)
        )
        provider = GoogleProvider([ANA, BO], lambda p: delegating.with_subject(p),
                                  api_root=google.api_root)  # fmt: skip
        service = build(  # an admin's script, with the real client library
            "calendar",
            "v3",
            credentials=delegating.with_subject(ANA),
            static_discovery=True,
            client_options={"api_endpoint": google.api_root},
        ).events()
        made = service.insert(calendarId=ANA, body=google_body).execute()
        assert made["organizer"]["email"] == ANA and made["recurrence"]
        bad = {**google_body, "end": None}
        with pytest.raises(Exception) as refused:
            service.insert(calendarId=ANA, body=bad).execute()
        assert "Missing end time" in str(refused.value)
        seen = [e for page in provider.changes(BO, None, WINDOW) for e in page.events]
        assert [e.title for e in seen] == ["Ana / Bo"] and seen[0].recurring
        assert len(provider.instances(BO, seen[0].id, WINDOW)) == 3

    graph_body = {
        "subject": "Gus / Hal",
        "body": {"contentType": "text", "content": "agenda to come"},
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
                "timeZone": "UTC"},
        "attendees": [{"emailAddress": {"address": BO}, "type": "required"}],
    }  # fmt: skip
    with GraphEmulator([ANA, BO]) as graph:
        outlook = graph_provider(graph, (ANA, BO))
        token = outlook._bearer(False)  # the app token msal got, as a script would use it
        url = f"{graph.graph_root}users/{ANA}/events"
        headers = {"Authorization": f"Bearer {token}"}
        made = httpx.post(url, json=graph_body, headers=headers)
        assert made.status_code == 201 and made.json()["subject"] == "Gus / Hal"
        refused = httpx.post(url, json={**graph_body, "start": "soon"}, headers=headers)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "ErrorInvalidRequest"
        seen = [e for page in outlook.changes(BO, None, WINDOW) for e in page.events]
        assert [e.title for e in seen] == ["Gus / Hal"]
        assert "agenda to come" in graph.description(ANA, graph.copy_id(ANA, seen[0].ical_uid))
        outlook.close()


def test_a_seeded_graph_emulator_is_reached_from_a_config_with_what_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Graph emulator alone: its credentials file is all a microsoft account needs."""
    registration = tmp_path / "graph.json"
    with seeded("graph", tmp_path, "--credentials", str(registration)):
        assert registration.stat().st_mode & 0o777 == 0o600
        app = json.loads(registration.read_text())
        secret = tmp_path / "graph-secret"
        secret.write_text(app["client_secret"])
        secret.chmod(0o600)
        config = tmp_path / "syncd.toml"
        config.write_text(
            '[syncd]\ndatabase = "sqlite:///syncd.db"\n'
            '[detect]\norg_domains = ["example.org"]\n'
            '[[accounts]]\nname = "trial"\nprovider = "microsoft"\n'
            f'tenant = "{app["tenant"]}"\nclient_id = "{app["client_id"]}"\n'
            f'client_secret_file = "{secret}"\nauthority = "{app["authority"]}"\n'
            f'graph_root = "{app["graph_root"]}"\nca_file = "{app["ca_file"]}"\n'
            f"calendars = {json.dumps([ANA, BO, CY])}\n"
        )
        assert main(["explain", "-c", str(config), "--calendar", ANA]) == 0
        out = capsys.readouterr().out
        assert "Ana / Bo" in out and "one-on-one" in out
