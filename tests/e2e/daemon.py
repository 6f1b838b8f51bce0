"""``syncd run`` as a real subprocess: its config, its notify socket, its log.

The daemon is started the way systemd starts it: ``NOTIFY_SOCKET`` names a
datagram socket this harness listens on, so a test sees READY, WATCHDOG,
STATUS and STOPPING exactly as the service manager would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from providers.emulators.google import GoogleEmulator

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def google_config(
    directory: Path,
    emulator: GoogleEmulator,
    people: Iterable[str],
    *,
    database: str,
    port: int,
    sync: dict[str, int] | None = None,
    push: bool = False,
    key_file: bool = False,
) -> Path:
    """A config for one Google organization account on the emulator.

    ``key_file``: with a key of its own (``syncd.key``), from which the
    installation's identity comes.
    """
    key = directory / "service-account.json"
    key.write_text(json.dumps(emulator.service_account_info()))
    key.chmod(0o600)
    settings = {"poll_seconds": 3600, "max_poll_seconds": 3600, **(sync or {})}
    lines = [
        "[syncd]",
        f"database = {json.dumps(database)}",
        f'base_url = "http://127.0.0.1:{port}"',
        "[sync]",
        *(f"{name} = {value}" for name, value in settings.items()),
        "[web]",
        f'listen = "127.0.0.1:{port}"',
        "secure_cookies = false",
        "[[accounts]]",
        'name = "acme"',
        'provider = "google"',
        f"calendars = {json.dumps(list(people))}",
        'service_account_file = "service-account.json"',
        f"api_root = {json.dumps(emulator.api_root)}",
    ]
    if key_file:
        from cryptography.fernet import Fernet

        (directory / "syncd.key").write_bytes(Fernet.generate_key() + b"\n")
        (directory / "syncd.key").chmod(0o600)
        lines.insert(1, 'key_file = "syncd.key"')
    if push:  # the daemon's own web server takes the emulator's notifications
        lines.append(f'webhook_url = "http://127.0.0.1:{port}/hooks/google"')
    path = directory / "syncd.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Daemon:
    """One ``syncd run`` process; its notify messages and log lines, collected."""

    def __init__(
        self,
        config: Path,
        *args: str,
        name: str = "syncd",
        command: Sequence[str] = (sys.executable, "-m", "syncd"),
        cwd: Path = ROOT,
    ) -> None:
        self.sock_path = config.parent / f"{name}.notify"
        self.sock_path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.sock_path))
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []
        self.lines: list[str] = []
        self._lock = threading.Lock()
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(self.sock_path),
            "WATCHDOG_USEC": "2000000",
            "PYTHONUNBUFFERED": "1",
        }
        self.proc = subprocess.Popen(
            [*command, "run", "-c", str(config), *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._threads = [
            threading.Thread(target=self._read_log, daemon=True),
            threading.Thread(target=self._read_notify, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_log(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def _read_notify(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                if self.proc.poll() is not None:
                    return
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self.messages.append(fields)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def notified(self, key: str, value: str | None = None) -> bool:
        with self._lock:
            return any(key in m and (value is None or m[key] == value) for m in self.messages)

    def synced(self) -> list[str]:
        """The calendars this daemon synced, one entry per sync, in order.

        Off a terminal syncd logs one JSON object per line; each sync's line
        names its calendar in a field of its own.
        """
        with self._lock:
            lines = list(self.lines)
        done = []
        for line in lines:
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            if entry.get("logger") == "syncd.runtime" and "calendar" in entry:
                done.append(entry["calendar"])
        return done

    def log(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(lambda: self.notified("READY", "1"), timeout, "READY", self)

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            name = signal.Signals(sig).name
            raise AssertionError(f"no exit after {name}\n{self.log()}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.sock.close()


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, daemon: Daemon | None = None
) -> Any:
    """Poll ``condition`` until it is truthy (and return it), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if daemon is not None and daemon.proc.poll() is not None:
            daemon.proc.wait(5)  # and let the log reader drain the pipe
            tail = daemon.log()[-3000:]
            raise AssertionError(
                f"syncd exited ({daemon.proc.returncode}) waiting for {what}:\n{tail}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def count(items: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts
