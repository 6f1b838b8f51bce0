"""``make demo`` in a fresh copy of the repository, as a newcomer would run it.

The copy is ``checkout.fresh_copy``'s: what a clone would hold.

The virtualenv is this test run's own, linked into the copy, so the test
does not spend minutes on pip; ``make -o .venv/.runtime`` keeps make from
re-bootstrapping it (which would re-point the shared editable install at the
copy). The editable install maps ``syncd`` to the original checkout, so
``PYTHONPATH`` puts the copy first, and the test checks that the copy's code
is the code that runs.

Ctrl-C in a terminal signals make and syncd together, and make then reports
"Interrupt" whatever syncd did; so SIGINT goes to syncd alone, and make's
exit status is syncd's.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from providers.model import Window
from syncd import assemble, config
from tests.e2e.checkout import REPO, STOP_WITHIN, Output, fresh_copy
from tests.e2e.daemon import free_port

FIRST_SYNC_WITHIN = 120.0  # seconds; it takes about two on an idle machine
LINK = re.compile(r"^\s+\w{3} \d\d \w{3} \d\d:\d\d UTC\s+(\S+) \+ (\S+)\s+(http://\S+/m/\S+)$")

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None
    or shutil.which("make") is None
    or sys.prefix == sys.base_prefix
    or not (REPO / ".git").exists(),
    reason="needs git, make, a git checkout and a virtualenv to reuse",
)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc: make may run syncd through a shell."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def syncd_pid(make: int) -> int:
    for pid in descendants(make):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"/syncd") for arg in argv) and b"demo" in argv:
            return pid
    raise AssertionError("no syncd process under make")


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    return fresh_copy(tmp_path / "syncd")


@pytest.fixture
def demo(clone: Path) -> Iterator[tuple[Output, int]]:
    env = {**os.environ, "PYTHONPATH": str(clone)}
    for outer in ("SYNCD_TEST_POSTGRES_URL", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(outer, None)  # the demo is SQLite; an outer `make test` is not this make's parent
    python = str(clone / ".venv" / "bin" / "python")
    where = subprocess.run(
        [python, "-c", "import providers, syncd; print(syncd.__file__, providers.__file__)"],
        cwd=clone,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert all(Path(path).is_relative_to(clone) for path in where), where

    port = free_port()
    process = subprocess.Popen(
        ["make", "-o", ".venv/.runtime", "demo", f"DEMO_ARGS=--listen 127.0.0.1:{port}"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group, so cleanup reaches everything it started
    )
    try:
        yield Output(process), port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def google_descriptions(clone: Path) -> list[str]:
    """Every description in the Google emulator's calendars, read as syncd reads them."""
    settings = config.load(clone / "demo" / "syncd.toml")
    account = next(a for a in settings.accounts if a.provider == "google")
    now = datetime.now(UTC)
    window = Window(now - timedelta(days=1), now + timedelta(days=28))
    with assemble.connected(account, settings) as conn:
        return [
            event.description
            for address in account.calendars
            for page in conn.provider.changes(address, None, window)
            for event in page.events
        ]


def test_make_demo_syncs_serves_the_agenda_and_stops_cleanly(
    clone: Path, demo: tuple[Output, int]
) -> None:
    output, port = demo
    output.until("first sync complete", FIRST_SYNC_WITHIN)
    output.until("Ctrl-C stops", 30)

    assert "first sync complete: 8 calendars" in output.text and ", 0 errors" in output.text
    links = {
        (a, b): url
        for line in output.lines
        if (m := LINK.match(line))
        for a, b, url in [m.groups()]
    }
    assert {("ana", "bo"), ("ana", "cy"), ("ana", "gus"), ("gus", "hal")} <= set(links)
    ana_cy = links[("ana", "cy")]
    assert ana_cy.startswith(f"http://127.0.0.1:{port}/m/")

    page = httpx.get(ana_cy, timeout=10)
    assert page.status_code == 200
    template = (clone / "syncd" / "templates" / "default.md").read_text(encoding="utf-8")
    points = [line[2:] for line in template.splitlines() if line.startswith("- ")]
    assert len(points) == 6
    for point in points:
        assert html.escape(point) in page.text

    # the invite in the calendar (Ana organizes it in Google) carries the same link
    assert any(ana_cy in body for body in google_descriptions(clone))

    os.kill(syncd_pid(output.process.pid), signal.SIGINT)
    assert output.process.wait(STOP_WITHIN) == 0
    output.rest()
    assert output.lines[-1] == "demo stopped"
    assert "Traceback" not in output.text
