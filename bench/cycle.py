"""A settled cycle at organization scale: every calendar polled once, nothing new.

One worker (``syncd.runtime.Worker``, its thread pool, the scheduler's
claims and releases, the engine, the Google adapter) against the Google
emulator running in a process of its own, so that this process's CPU time
and peak RSS are syncd's alone. Each size runs in a fresh process, because
peak RSS is a figure of a process's whole life::

    python -m bench.cycle --calendars 10000

prints one JSON line: the first pass (wall), then the settled cycles (wall,
CPU per calendar) and the peak RSS. The worker's clock is moved past the poll
interval between cycles, so every calendar is due at once; a cycle is the
time from that moment until each calendar has been synced.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.oauth2 import service_account

from providers.google import GoogleProvider
from syncd import config, detect, scheduler
from syncd.engine import CalendarSync, Policy
from syncd.runtime import Worker
from syncd.secrets import GOOGLE_SCOPES
from syncd.store import connect, migrate, sessions

ACCOUNT = "bench"
#: Longer than any calendar's poll interval (5 minutes less its jitter), shorter
#: than the engine's hourly replan: each cycle is a settled poll of everyone.
STEP = timedelta(minutes=6)


def addresses(people: int) -> list[str]:
    return [f"p{i:05d}@example.org" for i in range(people)]


def seed(people: int) -> dict[str, Any]:
    """The bench organization in the emulators' seed format: weekly 1:1s, teams of eight."""
    everyone = addresses(people)
    events: list[dict[str, Any]] = []
    for i in range(0, people - 1, 2):
        events.append(
            {
                "organizer": everyone[i],
                "attendees": [everyone[i + 1]],
                "title": "1:1",
                "in_days": 1 + i % 5,
                "at": f"{9 + (i // 5) % 8:02d}:00",
                "minutes": 30,
                "every_days": 7,
            }
        )
    for team in range(0, people, 8):
        members = everyone[team : team + 8]
        events.append(
            {
                "organizer": members[0],
                "attendees": members[1:],
                "title": "Team",
                "in_days": 1,
                "at": "09:00",
                "minutes": 60,
                "every_days": 7,
            }
        )
    return {"users": everyone, "events": events}


@dataclass
class Served:
    api_root: str
    service_account: dict[str, str]


@contextmanager
def google_emulator(people: int, folder: Path) -> Iterator[Served]:
    """``python -m providers.emulators.google`` seeded with the organization, until exit."""
    seeded, key = folder / "seed.json", folder / "service-account.json"
    seeded.write_text(json.dumps(seed(people)), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "providers.emulators.google", "--seed", str(seeded)]
        + ["--service-account", str(key)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base = process.stdout.readline().strip()
        if not base.startswith("http"):
            raise RuntimeError(f"the Google emulator did not start (said {base!r})")
        info = json.loads(key.read_text(encoding="utf-8"))
        yield Served(base + "calendar/v3/", info)
    finally:
        process.terminate()
        process.wait(timeout=30)


def drain(worker: Worker, clock: list[datetime], calendars: int) -> tuple[float, float]:
    """Step the worker until ``calendars`` more syncs ended: (wall seconds, CPU seconds)."""
    target = worker.totals.syncs + calendars
    started, cpu = time.perf_counter(), time.process_time()
    while worker.totals.syncs < target:
        worker.step(wait_seconds=0.05)
    return time.perf_counter() - started, time.process_time() - cpu


def run(people: int, url: str | None, cycles: int = 2) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, google_emulator(people, Path(tmp)) as served:
        engine = connect(url or f"sqlite:///{Path(tmp) / 'cycle.db'}")
        migrate(engine)
        factory = sessions(engine)
        delegating = service_account.Credentials.from_service_account_info(
            served.service_account, scopes=list(GOOGLE_SCOPES)
        )
        everyone = addresses(people)
        provider = GoogleProvider(
            everyone, lambda person: delegating.with_subject(person), api_root=served.api_root
        )
        policy = Policy(
            base_url="https://agenda.example.org",
            zone=UTC,
            rules=detect.Rules(org_domains=("example.org",)),
        )
        syncer = CalendarSync(provider, factory, policy, account=ACCOUNT)
        scheduler.enroll(factory, ACCOUNT, provider.name, everyone)
        clock = [datetime.now(UTC)]
        worker = Worker(factory, {ACCOUNT: syncer}, {}, config.Sync(), clock=lambda: clock[0])
        try:
            first_wall, _ = drain(worker, clock, people)
            first_writes = worker.totals.writes
            settled: list[tuple[float, float]] = []
            for _ in range(cycles):
                clock[0] += STEP
                before = worker.totals.writes
                settled.append(drain(worker, clock, people))
                if worker.totals.writes != before:
                    raise RuntimeError("a settled cycle wrote to a calendar")
            errors = worker.totals.errors
        finally:
            worker.drain()
            engine.dispose()
    wall, cpu = settled[-1]  # the last: every cache as warm as it gets
    return {
        "calendars": people,
        "database": engine.dialect.name,
        "first pass s": first_wall,
        "first pass writes": first_writes,
        "settled cycle s": wall,
        "CPU per settled calendar ms": 1000 * cpu / people,
        "peak RSS MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "errors": errors,
    }


def measure(people: int, url: str | None = None) -> dict[str, Any]:
    """One size in a fresh process (its own peak RSS): what ``run`` returns."""
    command = [sys.executable, "-m", "bench.cycle", "--calendars", str(people)]
    if url:
        command += ["--database", url]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.cycle --calendars {people} failed:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calendars", type=int, default=1000)
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: SQLite)")
    args = parser.parse_args()
    print(json.dumps(run(args.calendars, args.database)))


if __name__ == "__main__":
    main()
