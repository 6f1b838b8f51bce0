"""syncd installed the way an admin installs it: a wheel, a fresh venv, any folder.

Every other test runs from the editable install, which reads files straight
from the source tree, so a file the wheel leaves out goes unnoticed there.
This test builds the wheel from a copy of the checkout (what a clone holds),
installs it into a new virtualenv outside the repository with
``--no-deps --no-index`` and runs the installed ``syncd`` from a folder that
is neither the repository nor the config's: ``--version``, ``sync-once``,
``run`` (a meeting page, ``/static/app.js``) and ``demo``.

The dependencies come from this test run's own virtualenv through a ``.pth``
line (a plain path: ``.pth`` files in that folder, the editable install's
among them, are not processed), so the test spends no minutes on pip and
the only ``syncd`` and ``providers`` the new venv can import are the wheel's;
the test checks that too.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from providers.emulators.google import GoogleEmulator
from providers.memory import Recurrence
from syncd import block
from tests.e2e.checkout import REPO, STOP_WITHIN, Output, fresh_copy
from tests.e2e.daemon import Daemon, free_port, google_config, wait_until

ANA, BO = "ana@example.org", "bo@example.org"

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or sys.prefix == sys.base_prefix or not (REPO / ".git").exists(),
    reason="needs git, a git checkout and a virtualenv whose packages the new venv borrows",
)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    elsewhere: Path  # the working directory of every command: not the repo, not the config's

    @property
    def syncd(self) -> str:
        return str(self.venv / "bin" / "syncd")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return {**env, "PYTHONUNBUFFERED": "1"}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.syncd, *args],
            cwd=self.elsewhere,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("install")
    source = fresh_copy(root / "source", link_venv=False)
    dist = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--wheel-dir", str(dist), str(source)],
        check=True,
        capture_output=True,
        cwd=root,
    )
    (wheel,) = dist.glob("syncd-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
        + ["--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (Path(site) / "syncd-test-dependencies.pth").write_text("\n".join(ours) + "\n")
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return Installed(wheel, venv, elsewhere)


def test_the_wheel_holds_every_file_the_packages_read_at_run_time(installed: Installed) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "syncd", "providers"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    wanted = {name for name in listed if (REPO / name).is_file()}
    with zipfile.ZipFile(installed.wheel) as wheel:
        shipped = set(wheel.namelist())
    assert wanted - shipped == set()
    assert "syncd/templates/default.md" in shipped and "syncd/web/static/app.js" in shipped


def test_the_installed_command_imports_only_the_wheel_and_knows_its_version(
    installed: Installed,
) -> None:
    where = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c"]
        + ["import providers, syncd; print(syncd.__file__); print(providers.__file__)"],
        cwd=installed.elsewhere,
        env=installed.env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert all(Path(path).is_relative_to(installed.venv) for path in where), where

    version = installed.run("--version")
    assert version.returncode == 0, version.stderr
    assert re.fullmatch(r"syncd \d+\.\d+\.\d+\S*\n", version.stdout), version.stdout


@pytest.fixture
def emulator() -> Iterator[GoogleEmulator]:
    with GoogleEmulator((ANA, BO)) as emulator:
        yield emulator


def template_points(installed: Installed) -> list[str]:
    """The bundled template's points, read from the installed package."""
    site = next((installed.venv / "lib").glob("python*/site-packages"))
    text = (site / "syncd" / "templates" / "default.md").read_text(encoding="utf-8")
    return [line[2:] for line in text.splitlines() if line.startswith("- ")]


def test_sync_once_and_run_work_from_any_folder(
    installed: Installed, emulator: GoogleEmulator, tmp_path: Path
) -> None:
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=1)
    weekly = emulator.create_event(
        ANA, [ANA, BO], "Ana / Bo", start, start + timedelta(minutes=30), recurrence=Recurrence(7)
    )
    port = free_port()
    # a relative database path: resolved against the config's folder, not the working one
    config = google_config(tmp_path, emulator, (ANA, BO), database="sqlite:///syncd.db", port=port)

    once = installed.run("sync-once", "-c", str(config))
    assert once.returncode == 0, once.stderr
    assert (tmp_path / "syncd.db").exists() and not (installed.elsewhere / "syncd.db").exists()
    text = block.extract(emulator.description(ANA, emulator.copy_id(ANA, weekly, start)))
    assert text is not None
    token = re.search(r"/m/([A-Za-z0-9_-]+)", text)
    assert token is not None

    daemon = Daemon(config, command=[installed.syncd], cwd=installed.elsewhere)
    try:
        daemon.wait_ready()
        base = f"http://127.0.0.1:{port}"
        page = httpx.get(f"{base}/m/{token[1]}", timeout=10)
        assert page.status_code == 200 and "Ana / Bo" in page.text
        points = template_points(installed)
        assert len(points) == 6
        assert all(html.escape(point) in page.text for point in points)
        script = httpx.get(f"{base}/static/app.js", timeout=10)
        assert script.status_code == 200
        assert script.headers["content-type"].startswith(("text/javascript", "application/js"))
        assert "addEventListener" in script.text
        assert httpx.get(f"{base}/static/app.css", timeout=10).status_code == 200
        assert daemon.terminate(signal.SIGTERM) == 0
        assert "Traceback" not in daemon.log()
    finally:
        daemon.close()


def test_the_demo_runs_from_the_installed_wheel(installed: Installed, tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [installed.syncd, "demo", "--dir", str(tmp_path / "demo"), "--listen"]
        + [f"127.0.0.1:{port}"],
        cwd=installed.elsewhere,
        env=installed.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = Output(process)
        output.until("first sync complete", 120)
        output.until("Ctrl-C stops", 30)
        assert ", 0 errors" in output.text
        link = next(m[1] for line in output.lines if (m := re.search(r"(http://\S+/m/\S+)", line)))
        page = wait_until(lambda: httpx.get(link, timeout=10), 10, "the demo's page")
        assert page.status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(STOP_WITHIN) == 0
        output.rest()
        assert output.lines[-1] == "demo stopped"
        assert "Traceback" not in output.text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
