"""Progress of a long sync: a redrawn bar on a terminal, spaced log lines anywhere else."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from syncd.cli import main
from syncd.engine import Report
from syncd.progress import Progress
from tests.unit.test_cli import seed, write_config


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def synced(events: int = 0, writes: int = 0, errors: int = 0) -> Report:
    return Report(calendars=1, events_seen=events, writes=writes, errors=["x"] * errors)


def frames(screen: Terminal) -> list[str]:
    """What the terminal showed, redraw by redraw, without control characters."""
    return [frame.replace("\x1b[K", "") for frame in screen.getvalue().split("\r") if frame]


def test_on_a_terminal_one_line_is_redrawn_with_calendars_events_and_writes() -> None:
    screen, clock = Terminal(), FakeClock()
    progress = Progress(stream=screen, clock=clock)
    progress.expect(4)

    clock.now += 1
    progress.update(synced(events=1000, writes=50))
    clock.now += 1
    progress.update(synced(events=234, writes=6))

    shown = frames(screen)
    assert shown[0] == "calendars 0/4 ▕░░░░░░░░░░░░░░░░░░░░▏ events 0 writes 0"
    assert shown[-1] == "calendars 2/4 ▕██████████░░░░░░░░░░▏ events 1,234 writes 56"
    assert "\n" not in screen.getvalue()  # redrawn in place, not scrolled


def test_on_a_terminal_the_end_completes_the_bar_with_the_time_taken() -> None:
    screen, clock = Terminal(), FakeClock()
    with Progress(2, stream=screen, clock=clock) as progress:
        progress.update(synced(events=3))
        clock.now += 65
        progress.update(synced(events=4, writes=1, errors=1))

    assert screen.getvalue().endswith("\n")
    assert frames(screen)[-1] == (
        "calendars 2/2 ▕████████████████████▏ events 7 writes 1 errors 1 in 1m 05s\n"
    )


def test_off_a_terminal_a_log_line_at_most_every_interval_and_always_a_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream, clock = io.StringIO(), FakeClock()
    with (
        caplog.at_level(logging.INFO, logger="syncd.progress"),
        Progress(10, stream=stream, interval=10, clock=clock) as progress,
    ):
        for step in range(10):  # a calendar every 3 seconds
            clock.now += 3
            progress.update(synced(events=100, writes=1))
            if step == 3:
                lines_after_12s = len(caplog.records)

    messages = [record.getMessage() for record in caplog.records]
    assert stream.getvalue() == ""  # nothing drawn for a journal
    assert lines_after_12s == 1
    assert messages == [
        "synced 4 of 10 calendars: 400 events, 4 writes, 0 errors",  # at 12 s
        "synced 8 of 10 calendars: 800 events, 8 writes, 0 errors",  # at 24 s
        "done in 30s: synced 10 of 10 calendars: 1,000 events, 10 writes, 0 errors",
    ]
    last = caplog.records[-1]
    assert (last.calendars_done, last.calendars_total, last.writes) == (10, 10, 10)


def test_a_quick_run_off_a_terminal_logs_only_its_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="syncd.progress"),
        Progress(3, stream=io.StringIO(), clock=FakeClock()) as progress,
    ):
        for _ in range(3):
            progress.update(synced(events=2))

    assert [r.getMessage() for r in caplog.records] == [
        "done in 0s: synced 3 of 3 calendars: 6 events, 0 writes, 0 errors"
    ]


def test_a_failed_run_gives_no_summary_and_leaves_the_terminal_on_a_new_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    screen = Terminal()
    with (
        caplog.at_level(logging.INFO, logger="syncd.progress"),
        pytest.raises(RuntimeError),
        Progress(3, stream=screen, clock=FakeClock()) as progress,
    ):
        progress.update(synced())
        raise RuntimeError("config error")

    assert screen.getvalue().endswith("\n") and " in " not in screen.getvalue()
    assert caplog.records == []


def test_sync_once_off_a_terminal_ends_with_a_json_summary_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(tmp_path)

    assert main(["sync-once", "-c", str(write_config(tmp_path))]) == 0

    captured = capsys.readouterr()
    assert "calendars: 3" in captured.out
    last = captured.err.strip().splitlines()[-1]
    assert '"logger": "syncd.progress"' in last and "synced 3 of 3 calendars" in last
    assert '"writes": 2' in last
