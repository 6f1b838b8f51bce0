"""The `syncd` command as an operator uses it: one line per config error, summaries."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.memory import MemoryProvider, Recurrence
from syncd import block
from syncd.cli import main

ANA, BO, CY = "ana@example.org", "bo@example.org", "cy@example.org"


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(
        "[syncd]\n"
        'database = "sqlite:///state.db"\n'
        'base_url = "https://agenda.example.org"\n'
        "[detect]\n"
        'org_domains = ["example.org"]\n'
        "[[accounts]]\n"
        'name = "acme"\n'
        'provider = "memory"\n'
        'state_file = "calendars.json"\n' + extra,
        encoding="utf-8",
    )
    return path


def seed(tmp_path: Path) -> str:
    world = MemoryProvider([ANA, BO, CY])
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    uid = world.create_event(
        ANA, [ANA, BO], "Ana / Bo", start, start + timedelta(minutes=30),
        description="bring numbers", recurrence=Recurrence(interval_days=7),
    )  # fmt: skip
    world.create_event(ANA, [ANA, BO, CY], "Team", start, start + timedelta(hours=1))
    world.save(tmp_path / "calendars.json")
    return uid


def test_sync_once_prints_a_summary_and_a_second_pass_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uid = seed(tmp_path)
    config = write_config(tmp_path)

    assert main(["sync-once", "-c", str(config)]) == 0
    first = capsys.readouterr().out
    assert "calendars: 3" in first and "writes: 2" in first
    assert "more-than-two-people" in first and "errors: none" in first

    state = MemoryProvider.load(tmp_path / "calendars.json")
    body = state.description(
        ANA, state.copy_id(ANA, uid, state.get(ANA, state.copy_id(ANA, uid)).start)
    )
    assert body.startswith("bring numbers")
    assert "https://agenda.example.org/m/" in (block.extract(body) or "")

    assert main(["sync-once", "-c", str(config)]) == 0
    assert "writes: 0" in capsys.readouterr().out


def test_links_prints_the_link_each_upcoming_invite_carries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uid = seed(tmp_path)
    config = write_config(tmp_path)
    assert main(["sync-once", "-c", str(config)]) == 0
    capsys.readouterr()

    assert main(["links", "-c", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()

    state = MemoryProvider.load(tmp_path / "calendars.json")
    invited = []
    for week in (0, 1):
        first = state.get(ANA, state.copy_id(ANA, uid)).start
        copy = state.copy_id(ANA, uid, first + timedelta(days=7 * week))
        found = re.search(r"https://\S+/m/\S+", block.extract(state.description(ANA, copy)) or "")
        assert found is not None
        invited.append(found[0])
    assert len(lines) == 2
    for line, url in zip(lines, invited, strict=True):
        assert "ana + bo" in line and url in line and f"({ANA})" in line

    assert main(["links", "-c", str(config), "--calendar", BO]) == 0
    assert capsys.readouterr().out == f"no upcoming invite in {BO} carries an agenda link yet\n"


def test_explain_gives_every_event_its_verdict_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(tmp_path)
    config = write_config(tmp_path)

    assert main(["explain", "-c", str(config), "--calendar", ANA]) == 0

    out = capsys.readouterr().out
    assert out.splitlines()[0] == ANA
    assert "one-on-one" in out and "1:1 between ana@example.org and bo@example.org" in out
    assert "more-than-two-people" in out and "3 people" in out
    assert BO not in out.splitlines()  # only the calendar asked for


def test_explain_of_a_calendar_no_account_watches_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(tmp_path)
    config = write_config(tmp_path)

    assert main(["explain", "-c", str(config), "--calendar", "zed@example.org"]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "no account watches zed@example.org" in captured.err


def test_an_unknown_flag_is_named_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--bogus"])
    assert exited.value.code == 2
    assert "--bogus" in capsys.readouterr().err


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.metadata

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"syncd {importlib.metadata.version('syncd')}\n"


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("[sync]\nhorizon_dayz = 3\n", "sync.horizon_dayz"),
        ('[sync]\nhorizon_days = "two"\n', "sync.horizon_days"),
        ("[sync\n", "-"),
    ],
)
def test_a_bad_config_is_one_line_naming_file_and_key_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, key: str
) -> None:
    config = write_config(tmp_path, extra)

    assert main(["sync-once", "-c", str(config)]) == 2

    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(config) in err and f": {key}: " in err


def test_a_missing_config_file_through_the_installed_command_has_no_traceback(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nope.toml"
    result = subprocess.run(
        [sys.executable, "-m", "syncd.cli", "sync-once", "-c", str(missing)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"syncd: config error: {missing}: -: file not found"


def test_an_account_on_a_provider_not_built_yet_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text('[[accounts]]\nname = "c"\nprovider = "caldav"\n', encoding="utf-8")
    assert main(["sync-once", "-c", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'caldav'" in err


def test_web_serves_the_app_from_the_config_and_keeps_tokens_out_of_its_log(
    tmp_path: Path,
) -> None:
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(tmp_path, f'[web]\nlisten = "127.0.0.1:{port}"\nsecure_cookies = false\n')
    server = subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", "web", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        answer = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/m/secret-token-123", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer is not None, "syncd web did not start"
        assert answer.status_code == 404
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert "unsafe-inline" not in answer.headers["content-security-policy"]
    finally:
        server.terminate()
        log, _ = server.communicate(timeout=20)
    assert "/m/" in log  # the access log names the page...
    assert "secret-token-123" not in log  # ...but never the token


def test_run_on_a_busy_port_says_how_to_pick_another(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    seed(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path)
        config.write_text(
            config.read_text(encoding="utf-8").replace(
                "[detect]", f'[web]\nlisten = "127.0.0.1:{port}"\n[detect]'
            ),
            encoding="utf-8",
        )

        assert main(["run", "-c", str(config)]) == 1

    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("syncd: web.listen")]
    assert f"127.0.0.1:{port}" in line and "in use" in line and "[web] listen" in line
