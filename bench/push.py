"""Push to write: how long after a person schedules a 1:1 its invite carries the agenda link.

``syncd run`` (its own process, polling only hourly, so a write can only come
from a push) against the Google emulator in this process, which delivers a
channel notification for each change. Each sample creates a 1:1 and times it
to the PATCH that writes its block, as the emulator received it. A
notification on a calendar that has not synced within the debounce
(``syncd.push.DEBOUNCE``) is synced at once; one that synced lately (here
often the echo of an earlier sample's write) waits out the rest of that
interval. So the bound, the worst case, is the debounce plus three round
trips: the list that finds the change, the read of the new event, the write.
"""

from __future__ import annotations

import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.oauth2 import service_account

from providers.emulators.google import GoogleEmulator
from providers.google.calendar import GoogleProvider
from providers.google.grant import SCOPES as GOOGLE_SCOPES
from providers.model import Window
from syncd.push import DEBOUNCE

PEOPLE = [f"p{i:02d}@example.org" for i in range(8)]


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(folder: Path, emulator: GoogleEmulator, port: int) -> Path:
    key = folder / "service-account.json"
    key.write_text(json.dumps(emulator.service_account_info()), encoding="utf-8")
    key.chmod(0o600)
    database = f"sqlite:///{folder / 'syncd.db'}"
    lines = [
        "[syncd]",
        f"database = {json.dumps(database)}",
        f'base_url = "http://127.0.0.1:{port}"',
        "[sync]",
        "poll_seconds = 3600",
        "max_poll_seconds = 3600",
        "[web]",
        f'listen = "127.0.0.1:{port}"',
        "secure_cookies = false",
        "[[accounts]]",
        'name = "bench"',
        'provider = "google"',
        f"calendars = {json.dumps(PEOPLE)}",
        'service_account_file = "service-account.json"',
        f"api_root = {json.dumps(emulator.api_root)}",
        f'webhook_url = "http://127.0.0.1:{port}/hooks/google"',
    ]
    path = folder / "syncd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _wait(what: str, done: object, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"push bench: timed out waiting for {what}")
        time.sleep(0.02)


def round_trip(emulator: GoogleEmulator, samples: int = 30) -> float:
    """Median seconds of one settled list call through the adapter, on this loopback."""
    delegating = service_account.Credentials.from_service_account_info(
        emulator.service_account_info(), scopes=list(GOOGLE_SCOPES)
    )
    provider = GoogleProvider(
        PEOPLE, lambda person: delegating.with_subject(person), api_root=emulator.api_root
    )
    now = datetime.now(UTC)
    window = Window(now, now + timedelta(days=1))
    cursor = next(iter(provider.changes(PEOPLE[0], None, window))).cursor
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        list(provider.changes(PEOPLE[0], cursor, window))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(samples: int = 20) -> dict[str, float]:
    """p50 and p95 seconds from a new 1:1 to its block's write, the bound, the round trip."""
    with tempfile.TemporaryDirectory() as tmp, GoogleEmulator(PEOPLE) as emulator:
        port = free_port()
        config = _config(Path(tmp), emulator, port)
        log = (Path(tmp) / "syncd.log").open("w")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "syncd", "run", "-c", str(config)],
            cwd=tmp,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            def watched() -> bool:
                opened = {r.user for r in emulator.requests if r.path.endswith("/events/watch")}
                return opened >= set(PEOPLE)

            _wait("a push channel on every calendar", watched)
            time.sleep(1.0)  # the first pass ends; its polls are then an hour away
            lags: list[float] = []
            start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            for n in range(samples):
                time.sleep(random.uniform(0.2, 1.0))  # not in step with the daemon's loop
                organizer, guest = PEOPLE[(2 * n) % len(PEOPLE)], PEOPLE[(2 * n + 1) % len(PEOPLE)]
                slot = start + timedelta(days=2, hours=n)
                seen = len(emulator.requests)
                created = time.monotonic()
                uid = emulator.create_event(
                    organizer, [organizer, guest], "1:1", slot, slot + timedelta(minutes=30)
                )
                copy = emulator.copy_id(organizer, uid)

                def written(copy: str = copy, seen: int = seen) -> bool:
                    return any(
                        r.method == "PATCH" and r.path.endswith("/" + copy)
                        for r in emulator.requests[seen:]
                    )

                _wait(f"the block of sample {n}", written, timeout=60)
                patch = next(
                    r
                    for r in emulator.requests[seen:]
                    if r.method == "PATCH" and r.path.endswith("/" + copy)
                )
                lags.append(patch.at - created)
            rtt = round_trip(emulator)
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
            log.close()
    lags.sort()
    return {
        "p50": statistics.median(lags),
        "p95": lags[max(0, round(0.95 * len(lags)) - 1)],
        "round trip": rtt,
        "bound": DEBOUNCE.total_seconds() + 3 * rtt,
    }


if __name__ == "__main__":
    print(json.dumps(run()))
